/*
 * pride-run: start N ranks of a program on this machine and make them behave as one
 * program (DESIGN.md section 5).
 *
 *   pride-run -n N [--netns NS0,NS1,...] [--transport T] [--store SPEC]
 *             [--timeout-ms MS] [--] PROGRAM ARGS...
 *
 * Each rank gets PRIDE_RANK, PRIDE_NRANKS, PRIDE_STORE (a fresh "file:DIR" unless
 * --store), PRIDE_JOB (fresh), and PRIDE_TRANSPORT / PRIDE_TIMEOUT_MS when given.
 * Rank r's stdout and stderr come out of pride-run's stdout and stderr one whole
 * line at a time, prefixed "[r] ". When a rank fails, the others get SIGTERM, then
 * SIGKILL after a grace period, and pride-run exits with the first failure's status.
 *
 * The one idea: a single poll loop owns everything -- every rank's output pipes and a
 * signalfd carrying SIGCHLD, SIGINT, SIGTERM and SIGHUP -- so lines, deaths and
 * signals are handled one at a time, in one place, without threads or races. Only
 * this process writes to its stdout and stderr, one write() per line, so lines of
 * different ranks never interleave.
 *
 * Each rank leads its own process group, so ending a rank ends what it started too.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_MAX_RANKS 1024
#define RUN_LINE_MAX 65536 /* a longer line is cut into pieces of this size */
#define RUN_GRACE_MS 2000  /* SIGTERM -> SIGKILL */
#define RUN_READ_TURN 65536      /* bytes read from one pipe per poll round */
#define RUN_READ_DRAIN (1 << 20) /* after exit: at most what a full pipe holds */
#define RUN_NETNS_DIR "/var/run/netns"
#define RUN_EXIT_USAGE 2
#define RUN_EXIT_EXEC 127

static const char run_usage[] =
    "usage: pride-run -n N [--netns NS0,NS1,...] [--transport T] [--store SPEC]\n"
    "                 [--timeout-ms MS] [--] PROGRAM ARGS...\n"
    "\n"
    "Start N ranks of PROGRAM on this machine. Each rank gets the environment\n"
    "  PRIDE_RANK (0..N-1), PRIDE_NRANKS (N), PRIDE_JOB (a fresh job name),\n"
    "  PRIDE_STORE (a fresh temporary directory as file:DIR, removed at the end),\n"
    "  PRIDE_TRANSPORT and PRIDE_TIMEOUT_MS when the options below are given.\n"
    "Rank r's stdout and stderr are forwarded line by line, prefixed \"[r] \";\n"
    "stdin of every rank is /dev/null.\n"
    "\n"
    "  -n N                 number of ranks (1..1024)\n"
    "  --netns NS0,NS1,...  run rank r inside network namespace NS(r mod K), where K\n"
    "                       is the number of names given (K <= N; fewer names than\n"
    "                       ranks are reused round-robin). Names are files under\n"
    "                       " RUN_NETNS_DIR " (ip netns add). Unless PRIDE_IFNAME\n"
    "                       is set, each rank gets PRIDE_IFNAME = the first interface\n"
    "                       of its namespace that is up, not loopback, and has an\n"
    "                       address.\n"
    "  --transport T        set PRIDE_TRANSPORT (tcp, ofi, verbs)\n"
    "  --store SPEC         use this store instead of a fresh directory\n"
    "                       (file:DIR, tcp:HOST:PORT, redis:HOST:PORT)\n"
    "  --timeout-ms MS      set PRIDE_TIMEOUT_MS, the ranks' per-call timeout\n"
    "  --help               print this help and exit\n"
    "\n"
    "When a rank fails (non-zero exit or a signal), the other ranks get SIGTERM and,\n"
    "2 s later, SIGKILL; pride-run exits with the first failure's status (its exit\n"
    "code, or 128+signal). SIGINT, SIGTERM and SIGHUP sent to pride-run are forwarded\n"
    "to the ranks. Exit status: 0 when every rank exits 0; 2 for bad usage; 127 when\n"
    "PROGRAM cannot be executed or a namespace cannot be entered; 1 when pride-run\n"
    "itself fails.\n";

struct run_opts {
    int nranks;
    char **netns; /* names, nnetns of them (into netns_buf) */
    int nnetns;
    char *netns_buf;
    const char *transport;
    const char *store;
    const char *timeout_ms;
    char **argv; /* PROGRAM ARGS..., NULL-terminated */
};

/* One output pipe of one rank, with the bytes of its unfinished line. */
struct run_stream {
    int fd; /* read end; -1 once closed */
    int out; /* 1 or 2 */
    int rank;
    char *buf;
    size_t len;
};

struct run_rank {
    pid_t pid; /* 0: not started or reaped */
    struct run_stream s[2];
};

struct run {
    struct run_opts o;
    struct run_rank *ranks;
    int *netns_fd; /* one per namespace name, opened before any fork */
    int alive;
    int sigfd;
    sigset_t old_mask;
    pid_t self;
    char store[PATH_MAX + 8];
    char tmpdir[PATH_MAX]; /* non-empty: our fresh store directory, removed at exit */
    char job[64];
    int status;               /* first failure's exit status; 0 while none */
    int failed;               /* a rank failed: the others are being ended */
    struct timespec kill_at;  /* when failed: SIGKILL the survivors after this */
    char line[RUN_LINE_MAX + 32];
};

static void run_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "pride-run: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see pride-run --help)\n");
}

/* Value of option `name` at argv[*i]: "--name=V", "--name V", and for "-n" also "-nV".
   Returns NULL when argv[*i] is not this option; sets *missing when it is but has no
   value. */
static const char *run_optval(int argc, char **argv, int *i, const char *name, int *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=' && name[1] == '-')
        return a + n + 1;
    if (a[n] != '\0') {
        if (name[1] != '-')
            return a + n; /* -nV */
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = 1;
        return a;
    }
    return argv[++*i];
}

/* Parse a decimal integer in [lo, hi]; -1 when it is not one. */
static int run_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int run_parse_netns(struct run_opts *o, const char *list)
{
    free(o->netns_buf);
    free(o->netns);
    o->netns = NULL;
    o->nnetns = 0;
    o->netns_buf = strdup(list);
    size_t commas = 0;
    for (const char *p = list; *p; p++)
        commas += *p == ',';
    o->netns = calloc(commas + 1, sizeof *o->netns);
    if (!o->netns_buf || !o->netns) {
        fprintf(stderr, "pride-run: out of memory\n");
        return -1;
    }
    char *p = o->netns_buf;
    for (size_t k = 0; k <= commas; k++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p || !strcmp(p, ".") || !strcmp(p, "..") || strchr(p, '/')) {
            run_usage_error("--netns: bad namespace name '%s'", p);
            return -1;
        }
        o->netns[o->nnetns++] = p;
        if (comma)
            p = comma + 1;
    }
    return 0;
}

/* 0: run; 1: --help; -1: bad usage (reason printed). */
static int run_parse(int argc, char **argv, struct run_opts *o)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (a[0] != '-' || a[1] == '\0')
            break; /* PROGRAM */
        if ((v = run_optval(argc, argv, &i, "-n", &missing))) {
            long n;
            if (missing) {
                run_usage_error("%s needs a number of ranks", a);
                return -1;
            }
            if (run_parse_int(v, 1, RUN_MAX_RANKS, &n)) {
                run_usage_error("-n: '%s' is not a number of ranks from 1 to 1024", v);
                return -1;
            }
            o->nranks = (int)n;
        } else if ((v = run_optval(argc, argv, &i, "--netns", &missing))) {
            if (missing) {
                run_usage_error("%s needs a comma-separated list of namespaces", a);
                return -1;
            }
            if (run_parse_netns(o, v))
                return -1;
        } else if ((v = run_optval(argc, argv, &i, "--transport", &missing))) {
            if (missing || !*v) {
                run_usage_error("%s needs a transport name", a);
                return -1;
            }
            o->transport = v;
        } else if ((v = run_optval(argc, argv, &i, "--store", &missing))) {
            if (missing || !*v) {
                run_usage_error("%s needs a store spec", a);
                return -1;
            }
            o->store = v;
        } else if ((v = run_optval(argc, argv, &i, "--timeout-ms", &missing))) {
            long ms;
            if (missing) {
                run_usage_error("%s needs a number of milliseconds", a);
                return -1;
            }
            if (run_parse_int(v, 1, INT_MAX, &ms)) {
                run_usage_error("--timeout-ms: '%s' is not a positive number", v);
                return -1;
            }
            o->timeout_ms = v;
        } else {
            run_usage_error("unknown option '%s'", a);
            return -1;
        }
    }
    if (o->nranks == 0) {
        run_usage_error("%s", "missing -n N");
        return -1;
    }
    if (i >= argc) {
        run_usage_error("%s", "missing PROGRAM to run");
        return -1;
    }
    if (o->nnetns > o->nranks) {
        fprintf(stderr, "pride-run: --netns names %d namespaces for %d ranks (at most one "
                        "per rank) (see pride-run --help)\n", o->nnetns, o->nranks);
        return -1;
    }
    o->argv = argv + i;
    return 0;
}

static int64_t run_ms_until(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms;
}

/* Write all of buf to fd; output that nobody reads any more (EPIPE) is dropped. */
static void run_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void run_emit(struct run *run, struct run_stream *s, const char *text, size_t len)
{
    int p = snprintf(run->line, sizeof run->line, "[%d] ", s->rank);
    memcpy(run->line + p, text, len);
    run->line[(size_t)p + len] = '\n';
    run_write_all(s->out, run->line, (size_t)p + len + 1);
}

/* Append fresh bytes to the stream's line buffer and emit every complete line. */
static void run_stream_feed(struct run *run, struct run_stream *s, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (s->len + take >= RUN_LINE_MAX)
            take = RUN_LINE_MAX - s->len;
        memcpy(s->buf + s->len, data, take);
        s->len += take;
        data += take;
        n -= take;
        if (n > 0 && *data == '\n') {
            data++;
            n--;
            run_emit(run, s, s->buf, s->len);
            s->len = 0;
        } else if (s->len == RUN_LINE_MAX) {
            run_emit(run, s, s->buf, s->len);
            s->len = 0;
        }
    }
}

static void run_stream_close(struct run *run, struct run_stream *s)
{
    if (s->fd < 0)
        return;
    if (s->len > 0)
        run_emit(run, s, s->buf, s->len); /* partial last line */
    s->len = 0;
    close(s->fd);
    s->fd = -1;
}

/* Read up to limit bytes of what the pipe holds now (a bound, so one busy writer
   cannot starve the others); close the stream at end of file. */
static void run_stream_read(struct run *run, struct run_stream *s, size_t limit)
{
    char chunk[16384];
    while (limit > 0) {
        ssize_t n = read(s->fd, chunk, limit < sizeof chunk ? limit : sizeof chunk);
        if (n > 0) {
            run_stream_feed(run, s, chunk, (size_t)n);
            limit -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        run_stream_close(run, s); /* EOF or a read error */
        return;
    }
}

static void run_signal_ranks(struct run *run, int sig)
{
    for (int r = 0; r < run->o.nranks; r++)
        if (run->ranks[r].pid > 0)
            kill(-run->ranks[r].pid, sig);
}

/* The job has failed with status: SIGTERM every rank now, SIGKILL after the grace. */
static void run_end_all(struct run *run, int status)
{
    run->failed = 1;
    run->status = status;
    run_signal_ranks(run, SIGTERM);
    clock_gettime(CLOCK_MONOTONIC, &run->kill_at);
    run->kill_at.tv_sec += RUN_GRACE_MS / 1000;
    run->kill_at.tv_nsec += (RUN_GRACE_MS % 1000) * 1000000L;
    if (run->kill_at.tv_nsec >= 1000000000L) {
        run->kill_at.tv_sec++;
        run->kill_at.tv_nsec -= 1000000000L;
    }
}

static int run_exit_status(int wstatus)
{
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return WEXITSTATUS(wstatus);
}

static void run_reap(struct run *run)
{
    int wstatus;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
        int r;
        for (r = 0; r < run->o.nranks && run->ranks[r].pid != pid; r++)
            ;
        if (r == run->o.nranks)
            continue;
        run->ranks[r].pid = 0;
        run->alive--;
        int st = run_exit_status(wstatus);
        if (st == 0 || run->failed)
            continue;
        if (WIFSIGNALED(wstatus))
            fprintf(stderr, "pride-run: rank %d killed by signal %d (%s)", r, WTERMSIG(wstatus),
                    strsignal(WTERMSIG(wstatus)));
        else
            fprintf(stderr, "pride-run: rank %d exited with status %d", r, st);
        fputs(run->alive ? "; ending the other ranks\n" : "\n", stderr);
        run_end_all(run, st);
    }
}

/* The first interface of the current network namespace that is up, not loopback and
   has an IP address (else any that is up and not loopback); "" when there is none. */
static void run_find_ifname(char *name, size_t len)
{
    struct ifaddrs *ifs, *i;
    name[0] = '\0';
    if (getifaddrs(&ifs) != 0)
        return;
    for (int pass = 0; pass < 2 && !name[0]; pass++) {
        for (i = ifs; i; i = i->ifa_next) {
            if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
                continue;
            int ip = i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
                                     i->ifa_addr->sa_family == AF_INET6);
            if (pass == 0 && !ip)
                continue;
            snprintf(name, len, "%s", i->ifa_name);
            break;
        }
    }
    freeifaddrs(ifs);
}

static int run_setenv_int(const char *key, int v)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%d", v);
    return setenv(key, buf, 1);
}

/* In the forked child: become rank r and exec the program. Never returns. */
static void run_child(struct run *run, int r, int out_w, int err_w)
{
    const char *prog = run->o.argv[0];
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &run->old_mask, NULL);
    setpgid(0, 0);
    /* If pride-run dies without ending us, do not linger as an orphan. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != run->self)
        _exit(RUN_EXIT_EXEC);
    if (dup2(out_w, STDOUT_FILENO) < 0 || dup2(err_w, STDERR_FILENO) < 0)
        _exit(RUN_EXIT_EXEC);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0 && null != STDIN_FILENO) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
    if (run->o.nnetns > 0) {
        int k = r % run->o.nnetns;
        if (setns(run->netns_fd[k], CLONE_NEWNET) != 0) {
            fprintf(stderr, "pride-run: rank %d: cannot enter network namespace '%s': %s\n", r,
                    run->o.netns[k], strerror(errno));
            _exit(RUN_EXIT_EXEC);
        }
        if (!getenv("PRIDE_IFNAME")) {
            char ifname[IF_NAMESIZE + 1];
            run_find_ifname(ifname, sizeof ifname);
            if (ifname[0])
                setenv("PRIDE_IFNAME", ifname, 1);
            else
                fprintf(stderr, "pride-run: rank %d: no interface is up in network namespace "
                                "'%s'; PRIDE_IFNAME left unset\n", r, run->o.netns[k]);
        }
    }
    if (run_setenv_int("PRIDE_RANK", r) || run_setenv_int("PRIDE_NRANKS", run->o.nranks) ||
        setenv("PRIDE_STORE", run->store, 1) || setenv("PRIDE_JOB", run->job, 1) ||
        (run->o.transport && setenv("PRIDE_TRANSPORT", run->o.transport, 1)) ||
        (run->o.timeout_ms && setenv("PRIDE_TIMEOUT_MS", run->o.timeout_ms, 1))) {
        fprintf(stderr, "pride-run: rank %d: setenv: %s\n", r, strerror(errno));
        _exit(RUN_EXIT_EXEC);
    }
    execvp(prog, run->o.argv);
    fprintf(stderr, "pride-run: cannot execute '%s': %s\n", prog, strerror(errno));
    _exit(RUN_EXIT_EXEC);
}

static int run_spawn(struct run *run, int r)
{
    struct run_rank *rk = &run->ranks[r];
    int p[2][2] = {{-1, -1}, {-1, -1}};
    for (int k = 0; k < 2; k++) {
        if (pipe2(p[k], O_CLOEXEC) != 0) {
            fprintf(stderr, "pride-run: rank %d: pipe: %s\n", r, strerror(errno));
            goto fail;
        }
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "pride-run: rank %d: fork: %s\n", r, strerror(errno));
        goto fail;
    }
    if (pid == 0)
        run_child(run, r, p[0][1], p[1][1]);
    setpgid(pid, pid); /* also here, so a signal right after fork reaches the group */
    rk->pid = pid;
    run->alive++;
    for (int k = 0; k < 2; k++) {
        close(p[k][1]);
        fcntl(p[k][0], F_SETFL, fcntl(p[k][0], F_GETFL) | O_NONBLOCK);
        rk->s[k].fd = p[k][0];
    }
    return 0;
fail:
    for (int k = 0; k < 2; k++) {
        if (p[k][0] >= 0)
            close(p[k][0]);
        if (p[k][1] >= 0)
            close(p[k][1]);
    }
    return -1;
}

/* Forward output, reap ranks, forward signals, until every rank is gone. */
static int run_loop(struct run *run)
{
    int n = run->o.nranks;
    struct pollfd *pfd = calloc((size_t)(2 * n + 1), sizeof *pfd);
    struct run_stream **who = calloc((size_t)(2 * n + 1), sizeof *who);
    int rc = -1;
    if (!pfd || !who) {
        fprintf(stderr, "pride-run: out of memory\n");
        goto out;
    }
    while (run->alive > 0) {
        int m = 0;
        pfd[m++] = (struct pollfd){.fd = run->sigfd, .events = POLLIN};
        for (int r = 0; r < n; r++) {
            for (int k = 0; k < 2; k++) {
                struct run_stream *s = &run->ranks[r].s[k];
                if (s->fd < 0)
                    continue;
                who[m] = s;
                pfd[m++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
            }
        }
        int timeout = run->failed ? (int)run_ms_until(&run->kill_at) : -1;
        int ready = poll(pfd, (nfds_t)m, timeout);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, "pride-run: poll: %s\n", strerror(errno));
            goto out;
        }
        for (int j = 1; ready > 0 && j < m; j++)
            if (pfd[j].revents)
                run_stream_read(run, who[j], RUN_READ_TURN);
        if (ready > 0 && pfd[0].revents) {
            struct signalfd_siginfo si;
            while (read(run->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGCHLD)
                    run_reap(run);
                else
                    run_signal_ranks(run, (int)si.ssi_signo);
            }
        }
        if (run->failed && run->alive > 0 && run_ms_until(&run->kill_at) == 0)
            run_signal_ranks(run, SIGKILL);
    }
    /* Every rank is gone: what it wrote is in the pipes now. Take it, but do not wait
       for processes the ranks left behind that still hold a pipe open. */
    for (int r = 0; r < n; r++) {
        for (int k = 0; k < 2; k++) {
            struct run_stream *s = &run->ranks[r].s[k];
            if (s->fd >= 0)
                run_stream_read(run, s, RUN_READ_DRAIN);
            run_stream_close(run, s);
        }
    }
    rc = 0;
out:
    free(pfd);
    free(who);
    return rc;
}

static int run_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int run_make_store(struct run *run)
{
    uint32_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (uint32_t)time(NULL);
    snprintf(run->job, sizeof run->job, "pride-run-%d-%08x", (int)run->self, nonce);
    if (run->o.store) {
        snprintf(run->store, sizeof run->store, "%s", run->o.store);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if (snprintf(run->tmpdir, sizeof run->tmpdir, "%s/pride-run.XXXXXX", tmp) >=
            (int)sizeof run->tmpdir ||
        !mkdtemp(run->tmpdir)) {
        fprintf(stderr, "pride-run: cannot create a store directory under %s: %s\n", tmp,
                strerror(errno));
        run->tmpdir[0] = '\0';
        return -1;
    }
    snprintf(run->store, sizeof run->store, "file:%s", run->tmpdir);
    return 0;
}

static int run_open_netns(struct run *run)
{
    run->netns_fd = malloc((size_t)(run->o.nnetns ? run->o.nnetns : 1) * sizeof *run->netns_fd);
    if (!run->netns_fd) {
        fprintf(stderr, "pride-run: out of memory\n");
        return -1;
    }
    for (int k = 0; k < run->o.nnetns; k++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", RUN_NETNS_DIR, run->o.netns[k]);
        run->netns_fd[k] = open(path, O_RDONLY | O_CLOEXEC);
        if (run->netns_fd[k] < 0) {
            fprintf(stderr, "pride-run: network namespace '%s': %s: %s\n", run->o.netns[k],
                    path, strerror(errno));
            while (k-- > 0)
                close(run->netns_fd[k]);
            run->o.nnetns = 0;
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct run run; /* large line buffer: not on the stack */
    int rc = 1, started = 0;
    run.sigfd = -1;
    run.self = getpid();

    int p = run_parse(argc, argv, &run.o);
    if (p == 1) {
        fputs(run_usage, stdout);
        rc = 0;
        goto out;
    }
    if (p < 0) {
        rc = RUN_EXIT_USAGE;
        goto out;
    }
    if (run_open_netns(&run)) {
        rc = RUN_EXIT_USAGE;
        goto out;
    }
    run.ranks = calloc((size_t)run.o.nranks, sizeof *run.ranks);
    for (int r = 0; run.ranks && r < run.o.nranks; r++) {
        for (int k = 0; k < 2; k++) {
            struct run_stream *s = &run.ranks[r].s[k];
            s->fd = -1;
            s->out = k + 1;
            s->rank = r;
            s->buf = malloc(RUN_LINE_MAX);
            if (!s->buf)
                goto nomem;
        }
    }
    if (!run.ranks)
        goto nomem;
    if (run_make_store(&run))
        goto out;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &run.old_mask);
    signal(SIGPIPE, SIG_IGN);
    run.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (run.sigfd < 0) {
        fprintf(stderr, "pride-run: signalfd: %s\n", strerror(errno));
        goto out;
    }
    fflush(NULL);
    for (; started < run.o.nranks; started++)
        if (run_spawn(&run, started))
            break;
    if (started < run.o.nranks)
        run_end_all(&run, 1); /* could not start them all: end those that run */
    if (run_loop(&run)) {
        run_signal_ranks(&run, SIGKILL);
        while (run.alive > 0 && wait(NULL) > 0)
            run.alive--;
        goto out;
    }
    rc = run.status;
    goto out;
nomem:
    fprintf(stderr, "pride-run: out of memory\n");
out:
    if (run.tmpdir[0])
        nftw(run.tmpdir, run_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (run.sigfd >= 0)
        close(run.sigfd);
    for (int k = 0; run.netns_fd && k < run.o.nnetns; k++)
        close(run.netns_fd[k]);
    for (int r = 0; run.ranks && r < run.o.nranks; r++)
        for (int k = 0; k < 2; k++)
            free(run.ranks[r].s[k].buf);
    free(run.ranks);
    free(run.netns_fd);
    free(run.o.netns);
    free(run.o.netns_buf);
    return rc;
}
