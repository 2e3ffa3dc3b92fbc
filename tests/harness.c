/* Multi-rank test harness: see harness.h. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>

void harness_rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            harness_rm_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

struct run_arg {
    harness_fn fn;
    void *arg;
    const struct harness_opts *opts;
};

static int run_child(int rank, int nranks, const char *store, void *p)
{
    struct run_arg *ra = p;
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = nranks;
    cfg.store = store;
    cfg.timeout_ms = ra->opts && ra->opts->timeout_ms ? ra->opts->timeout_ms : 20000;
    cfg.transport = ra->opts && ra->opts->transport ? ra->opts->transport : NULL;
    pride_context_t *ctx = NULL;
    int st = pride_init(&cfg, &ctx);
    if (st != PRIDE_OK) {
        fprintf(stderr, "rank %d: pride_init: %s\n", rank, pride_strerror(st));
        return 1;
    }
    int rc = ra->fn(ctx, rank, nranks, ra->arg);
    pride_finalize(ctx);
    return rc;
}

int harness_run(int nranks, harness_fn fn, void *arg, const struct harness_opts *opts)
{
    struct run_arg ra = {fn, arg, opts};
    return harness_fork(nranks, run_child, &ra, opts);
}

int harness_fork(int nranks, harness_raw_fn fn, void *arg, const struct harness_opts *opts)
{
    char dir[] = "/tmp/pride-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char store[64];
    snprintf(store, sizeof store, "file:%s", dir);
    pid_t *pids = calloc((size_t)nranks, sizeof *pids);
    if (!pids)
        return -1;
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < nranks; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            int rc = fn(r, nranks, store, arg);
            fflush(stdout);
            fflush(stderr);
            _exit(rc == 0 ? 0 : 1);
        }
        pids[r] = pid;
    }
    int guard = opts && opts->guard_s ? opts->guard_s : 240;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int left = nranks, failures = 0;
    while (left > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            for (int r = 0; r < nranks; r++) {
                if (pids[r] != pid)
                    continue;
                pids[r] = 0;
                left--;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                    failures++;
                    if (WIFSIGNALED(status))
                        fprintf(stderr, "harness: rank %d killed by signal %d\n", r,
                                WTERMSIG(status));
                    else
                        fprintf(stderr, "harness: rank %d exited %d\n", r, WEXITSTATUS(status));
                }
            }
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > guard) {
            for (int r = 0; r < nranks; r++) {
                if (pids[r] > 0) {
                    fprintf(stderr, "harness: rank %d still running after %d s, killing\n", r,
                            guard);
                    kill(pids[r], SIGKILL);
                }
            }
            guard = INT32_MAX / 2;
            continue;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(pids);
    harness_rm_tree(dir);
    return failures;
}
