/*
 * pride-hello: the smallest pride program. It joins the job described by the
 * environment (pride_init(NULL, ...)), says which rank it is and where it listens,
 * and leaves. A check that a launch works end to end, e.g. across the emulated
 * cluster:  pride-run -n 3 --netns pride-h0,pride-h1,pride-h2 pride-hello
 *
 * The one idea: pride_init returns only once every rank has connected to every other,
 * so each "rank R of N" line proves the whole mesh came up; no collective is needed.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <pride/pride.h>

/* The first IPv4 address of interface name, or "" when it has none. */
static void hello_ifaddr(const char *name, char *addr, size_t len)
{
    struct ifaddrs *ifs, *i;
    addr[0] = '\0';
    if (getifaddrs(&ifs) != 0)
        return;
    for (i = ifs; i; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, name)) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr,
                      addr, (socklen_t)len);
            break;
        }
    }
    freeifaddrs(ifs);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: pride-run -n N [--netns NS0,...] pride-hello\n"
               "Join the job from the environment (PRIDE_RANK, PRIDE_NRANKS, PRIDE_STORE, ...),\n"
               "print \"rank R of N on IFNAME (ADDRESS)\" and exit.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "pride-hello: unexpected argument '%s' (see pride-hello --help)\n",
                argv[1]);
        return 2;
    }
    pride_context_t *ctx = NULL;
    int st = pride_init(NULL, &ctx);
    if (st != PRIDE_OK) {
        fprintf(stderr, "pride-hello: pride_init: %s\n", pride_strerror(st));
        return 1;
    }
    const char *ifname = getenv("PRIDE_IFNAME");
    char addr[INET_ADDRSTRLEN] = "";
    if (ifname && *ifname)
        hello_ifaddr(ifname, addr, sizeof addr);
    printf("rank %d of %d on %s%s%s%s\n", pride_rank(ctx), pride_nranks(ctx),
           ifname && *ifname ? ifname : "any interface", addr[0] ? " (" : "", addr,
           addr[0] ? ")" : "");
    st = pride_finalize(ctx);
    if (st != PRIDE_OK) {
        fprintf(stderr, "pride-hello: pride_finalize: %s\n", pride_strerror(st));
        return 1;
    }
    return 0;
}
