/*
 * Tests of the emulated cluster (tools/pride-cluster): hosts in network namespaces
 * joined by a bridge, shaped by tbf, with nftables loss; and pride-run placing one
 * rank in each host.
 *
 * The one idea: every test builds its own cluster under a prefix unique to this
 * process, and the teardown deletes it whether the test passed or failed, so no
 * namespace outlives the test. Without root or network namespaces the tests skip
 * and say why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NETNS_DIR "/var/run/netns"

static char prefix[32];
static char cluster_script[4096];
static char *last_out; /* output of the last command; freed by the next and at teardown */

/* Run argv, capturing stdout and stderr together; returns the exit status
   (128 + signal when killed) and points *out, if set, at the output (valid until the
   next command). */
static int run_cmd(char *const argv[], char **out)
{
    free(last_out);
    last_out = NULL;
    char path[] = "/tmp/pride-cluster-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot execute %s\n", argv[0]);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (out) {
        FILE *f = fdopen(fd, "r");
        assert_non_null(f);
        rewind(f);
        size_t cap = 1 << 16;
        last_out = calloc(1, cap);
        assert_non_null(last_out);
        size_t n = fread(last_out, 1, cap - 1, f);
        last_out[n] = '\0';
        fclose(f);
        *out = last_out;
    } else {
        close(fd);
    }
    unlink(path);
    return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
}

/* pride-cluster CMD [N] [args...] --prefix PREFIX */
static int cluster(const char *cmd, const char *const *args, char **out)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = cluster_script;
    argv[argc++] = (char *)cmd;
    for (; args && *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc++] = "--prefix";
    argv[argc++] = prefix;
    argv[argc] = NULL;
    int st = run_cmd(argv, out);
    return st;
}

static int netns_exists(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", NETNS_DIR, name);
    return access(path, F_OK) == 0;
}

/* Names shared by every test: this process's cluster prefix and the script. */
static int group_setup(void **state)
{
    (void)state;
    snprintf(prefix, sizeof prefix, "pridet%d", (int)getpid());
    const char *src = getenv("PRIDE_SOURCE_DIR");
    snprintf(cluster_script, sizeof cluster_script, "%s/tools/pride-cluster", src ? src : ".");
    return 0;
}

static void require_netns(void)
{
    if (geteuid() != 0) {
        print_message("skipped: network namespaces need root\n");
        skip();
    }
    char probe[64];
    snprintf(probe, sizeof probe, "%s-probe", prefix);
    char *add[] = {"ip", "netns", "add", probe, NULL};
    char *del[] = {"ip", "netns", "del", probe, NULL};
    char *out = NULL;
    int st = run_cmd(add, &out);
    if (st != 0) {
        print_message("skipped: 'ip netns add' failed (%d): %s", st, out);
        skip();
    }
    assert_int_equal(run_cmd(del, NULL), 0);
}

static int teardown(void **state)
{
    (void)state;
    if (geteuid() == 0)
        cluster("down", NULL, NULL);
    free(last_out);
    last_out = NULL;
    return 0;
}

/* In a forked child: enter namespace ns; exits 90 when it cannot. */
static void enter_netns(const char *ns)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", NETNS_DIR, ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        _exit(90);
    close(fd);
}

/* Child in namespace `ns`: accept one connection on addr, answer "ping" with "pong".
   Writes its port to ready_fd once listening. Exit codes: 0 ok, 9x setup failures. */
static void tcp_server(const char *ns, const char *addr, int ready_fd)
{
    enter_netns(ns);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    socklen_t sl = sizeof sa;
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) || listen(s, 1) ||
        getsockname(s, (struct sockaddr *)&sa, &sl))
        _exit(91);
    uint16_t port = ntohs(sa.sin_port);
    if (write(ready_fd, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(92);
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 30000) != 1) /* hang guard */
        _exit(93);
    int c = accept(s, NULL, NULL);
    char buf[4];
    struct timeval tv = {.tv_sec = 30};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (c < 0 || recv(c, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "ping", 4) ||
        send(c, "pong", 4, 0) != 4)
        _exit(94);
    close(c);
    close(s);
    _exit(0);
}

/* Child in namespace `ns`: connect to addr:port, send "ping", expect "pong". */
static void tcp_client(const char *ns, const char *addr, uint16_t port)
{
    enter_netns(ns);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char buf[4];
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) || send(s, "ping", 4, 0) != 4 ||
        recv(s, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "pong", 4))
        _exit(95);
    close(s);
    _exit(0);
}

static int wait_status(pid_t pid)
{
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* A TCP exchange from host namespace `from` to `to_addr` served in namespace `to`. */
static void check_tcp(const char *from, const char *to, const char *to_addr)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t server = fork();
    assert_true(server >= 0);
    if (server == 0) {
        close(pipefd[0]);
        tcp_server(to, to_addr, pipefd[1]);
    }
    close(pipefd[1]);
    uint16_t port = 0;
    ssize_t n = read(pipefd[0], &port, sizeof port);
    close(pipefd[0]);
    if (n != (ssize_t)sizeof port) {
        fail_msg("server in %s did not start (exit %d)", to, wait_status(server));
    }
    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0)
        tcp_client(from, to_addr, port);
    int cst = wait_status(client);
    if (cst != 0)
        kill(server, SIGKILL);
    int sst = wait_status(server);
    assert_int_equal(cst, 0);
    assert_int_equal(sst, 0);
}

static void test_up_reach_down(void **state)
{
    (void)state;
    require_netns();
    const char *up[] = {"3", "--rate", "1gbit", NULL};
    char *out = NULL;
    int st = cluster("up", up, &out);
    if (st != 0)
        fail_msg("pride-cluster up failed (%d): %s", st, out);
    char want[128];
    snprintf(want, sizeof want, "%s-h2 10.77.0.3", prefix);
    assert_non_null(strstr(out, want));

    char name[64];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s-h%d", prefix, i);
        assert_true(netns_exists(name));
    }
    snprintf(name, sizeof name, "%s-sw", prefix);
    assert_true(netns_exists(name));
    snprintf(name, sizeof name, "%s-h3", prefix);
    assert_false(netns_exists(name));

    /* The hosts file lists "namespace address" for each host. */
    char hosts[256];
    snprintf(hosts, sizeof hosts, "/run/pride-cluster/%s.hosts", prefix);
    FILE *f = fopen(hosts, "r");
    assert_non_null(f);
    char ns[64], ip[64];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fscanf(f, "%63s %63s", ns, ip), 2);
        snprintf(name, sizeof name, "%s-h%d", prefix, i);
        assert_string_equal(ns, name);
        snprintf(name, sizeof name, "10.77.0.%d", i + 1);
        assert_string_equal(ip, name);
    }
    assert_int_equal(fscanf(f, "%63s", ns), EOF);
    fclose(f);

    /* Host 0 reaches host 2 over the bridge. */
    char h0[64], h2[64];
    snprintf(h0, sizeof h0, "%s-h0", prefix);
    snprintf(h2, sizeof h2, "%s-h2", prefix);
    check_tcp(h0, h2, "10.77.0.3");

    /* Both ends of host 1's link are capped at 1 Gbit/s. */
    char sw[64], h1[64];
    snprintf(sw, sizeof sw, "%s-sw", prefix);
    snprintf(h1, sizeof h1, "%s-h1", prefix);
    char *tc_host[] = {"tc", "-n", h1, "qdisc", "show", "dev", "eth0", NULL};
    char *tc_port[] = {"tc", "-n", sw, "qdisc", "show", "dev", "p1", NULL};
    assert_int_equal(run_cmd(tc_host, &out), 0);
    assert_non_null(strstr(out, "tbf"));
    assert_non_null(strstr(out, "rate 1Gbit"));
    assert_int_equal(run_cmd(tc_port, &out), 0);
    assert_non_null(strstr(out, "tbf"));
    assert_non_null(strstr(out, "rate 1Gbit"));

    assert_int_equal(cluster("down", NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s-h%d", prefix, i);
        assert_false(netns_exists(name));
    }
    assert_false(netns_exists(sw));
    assert_int_equal(access(hosts, F_OK), -1);
}

static void test_loss_and_no_rate(void **state)
{
    (void)state;
    require_netns();
    const char *up[] = {"2", "--rate", "none", "--loss", "2.5", NULL};
    char *out = NULL;
    int st = cluster("up", up, &out);
    if (st != 0)
        fail_msg("pride-cluster up failed (%d): %s", st, out);
    char h0[64];
    snprintf(h0, sizeof h0, "%s-h0", prefix);
    char *nft[] = {"ip", "netns", "exec", h0, "nft", "list", "table", "inet", "pride", NULL};
    assert_int_equal(run_cmd(nft, &out), 0);
    assert_non_null(strstr(out, "numgen random mod 10000 < 250"));
    assert_non_null(strstr(out, "drop"));
    char *tc[] = {"tc", "-n", h0, "qdisc", "show", "dev", "eth0", NULL};
    assert_int_equal(run_cmd(tc, &out), 0);
    assert_null(strstr(out, "tbf"));
}

/* up replaces a cluster of the same prefix; down is safe on a partial cluster. */
static void test_idempotent(void **state)
{
    (void)state;
    require_netns();
    const char *up3[] = {"3", NULL};
    const char *up2[] = {"2", "--rate", "10gbit", NULL};
    char name[64];
    assert_int_equal(cluster("up", up3, NULL), 0);
    assert_int_equal(cluster("up", up2, NULL), 0);
    snprintf(name, sizeof name, "%s-h2", prefix);
    assert_false(netns_exists(name));
    snprintf(name, sizeof name, "%s-h1", prefix);
    assert_true(netns_exists(name));
    assert_int_equal(cluster("down", NULL, NULL), 0);
    assert_int_equal(cluster("down", NULL, NULL), 0);

    /* A half-built cluster: a stray host namespace and no switch. */
    snprintf(name, sizeof name, "%s-h7", prefix);
    char *add[] = {"ip", "netns", "add", name, NULL};
    assert_int_equal(run_cmd(add, NULL), 0);
    assert_int_equal(cluster("down", NULL, NULL), 0);
    assert_false(netns_exists(name));
}

static void test_usage(void **state)
{
    (void)state;
    const char *zero[] = {"0", NULL};
    const char *rate[] = {"2", "--rate", "3gbit", NULL};
    const char *loss[] = {"2", "--loss", "150", NULL};
    char *out = NULL;
    assert_int_equal(cluster("up", zero, &out), 2);
    assert_memory_equal(out, "pride-cluster: ", 15);
    assert_int_equal(cluster("up", rate, NULL), 2);
    assert_int_equal(cluster("up", loss, NULL), 2);
    assert_int_equal(cluster("reboot", NULL, NULL), 2);
    char *help[] = {cluster_script, "--help", NULL};
    assert_int_equal(run_cmd(help, &out), 0);
    assert_memory_equal(out, "usage: pride-cluster", 20);
}

/* pride-run puts rank r in host r; the ranks find each other over the bridge. */
static void test_pride_run_across_hosts(void **state)
{
    (void)state;
    require_netns();
    const char *up[] = {"3", NULL};
    char *out = NULL;
    int st = cluster("up", up, &out);
    if (st != 0)
        fail_msg("pride-cluster up failed (%d): %s", st, out);
    const char *dir = getenv("PRIDE_TOOLS_DIR");
    assert_non_null(dir);
    char run[4096], hello[4096], list[256];
    snprintf(run, sizeof run, "%s/pride-run", dir);
    snprintf(hello, sizeof hello, "%s/pride-hello", dir);
    snprintf(list, sizeof list, "%s-h0,%s-h1,%s-h2", prefix, prefix, prefix);
    char *argv[] = {run, "-n", "3", "--netns", list, "--timeout-ms", "20000", hello, NULL};
    st = run_cmd(argv, &out);
    if (st != 0)
        fail_msg("pride-run across the cluster failed (%d): %s", st, out);
    for (int r = 0; r < 3; r++) {
        char want[64];
        snprintf(want, sizeof want, "[%d] rank %d of 3 on eth0 (10.77.0.%d)\n", r, r, r + 1);
        if (!strstr(out, want))
            fail_msg("missing '%s' in: %s", want, out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_up_reach_down, teardown),
        cmocka_unit_test_teardown(test_loss_and_no_rate, teardown),
        cmocka_unit_test_teardown(test_idempotent, teardown),
        cmocka_unit_test_teardown(test_usage, teardown),
        cmocka_unit_test_teardown(test_pride_run_across_hosts, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
