/*
 * file:DIR — a store in a directory every rank sees (local, or NFS across hosts).
 *
 * The one idea: a reader must never see half a value, so each key is one file that
 * appears whole or not at all. set writes a private temporary file in the same
 * directory and rename()s it over the key's name (atomic, also on NFS); get opens
 * the name, backing off (1 ms doubling to 50 ms) while it is absent. add is a
 * read-modify-write of such a file under an open-file-description lock (fcntl
 * F_OFD_SETLK, which NFS forwards to the server) on a companion lock file.
 *
 * Layout: DIR/<job>/<key>, each name escaped to [A-Za-z0-9_-] plus %XX, or, when
 * that gets long, a prefix and a 128-bit hash. A file holds a magic, the key itself
 * (so a hash collision or a stray file is detected, not trusted) and the value.
 * Names beginning with '.' (temporary and lock files) are never key names, because
 * '.' is always escaped. Directories and files are private to the user (0700, 0600):
 * the job's key travels through the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pride/status.h"
#include "store.h"
#include "store_impl.h"

#define FILE_MAGIC "PRSF"
#define FILE_HDR 8           /* magic, then the key's length as 4 little-endian bytes */
#define FILE_NAME_PLAIN 200  /* escaped names longer than this are hashed */
#define FILE_NAME_CAP 256    /* room for any name we make, with its NUL */
#define FILE_PATH_CAP PATH_MAX
#define FILE_DIR_CAP (FILE_PATH_CAP - FILE_NAME_CAP - 8) /* room for "/.l-NAME" after it */

struct file_store {
    struct pride_store base;
    int timeout_ms;
    char dir[FILE_DIR_CAP]; /* DIR/<job> */
};

static atomic_uint file_tmp_counter;

/* 64-bit FNV-1a from a given offset basis; two bases make a 128-bit name hash. */
static uint64_t file_fnv(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
    return h;
}

/* The file name standing for key (or job) s. */
static void file_name(const char *s, char out[FILE_NAME_CAP])
{
    static const char hex[] = "0123456789abcdef";
    char esc[3 * STORE_MAX_KEY + 1];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-') {
            esc[n++] = (char)c;
        } else {
            esc[n++] = '%';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        }
    }
    esc[n] = '\0';
    if (n <= FILE_NAME_PLAIN) {
        memcpy(out, esc, n + 1);
        return;
    }
    /* '#' is escaped above, so a hashed name never equals a plain one. */
    snprintf(out, FILE_NAME_CAP, "#%.150s~%016" PRIx64 "%016" PRIx64, esc,
             file_fnv(s, UINT64_C(0xcbf29ce484222325)), file_fnv(s, UINT64_C(0x84222325cbf29ce4)));
}

static void file_path(const struct file_store *fs, const char *prefix, const char *key,
                      char path[FILE_PATH_CAP])
{
    char name[FILE_NAME_CAP];
    file_name(key, name);
    snprintf(path, FILE_PATH_CAP, "%s/%s%s", fs->dir, prefix, name);
}

/* Write key's file whole, under a temporary name, then rename it into place. */
static int file_write(struct file_store *fs, const char *key, const void *val, size_t len)
{
    char path[FILE_PATH_CAP], tmp[FILE_PATH_CAP];
    file_path(fs, "", key, path);
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint64_t)pride_now_ns();
    snprintf(tmp, sizeof tmp, "%s/.t-%ld-%u-%016" PRIx64, fs->dir, (long)getpid(),
             atomic_fetch_add(&file_tmp_counter, 1), r);

    uint32_t kl = (uint32_t)strlen(key);
    size_t total = FILE_HDR + kl + len, done = 0;
    unsigned char *buf = malloc(total);
    if (!buf)
        return store_fail(&fs->base, PRIDE_ERR_NOMEM, "file store: out of memory writing "
                          "key \"%s\"", key);
    memcpy(buf, FILE_MAGIC, 4);
    for (int i = 0; i < 4; i++)
        buf[4 + i] = (unsigned char)(kl >> (8 * i));
    memcpy(buf + FILE_HDR, key, kl);
    if (len > 0)
        memcpy(buf + FILE_HDR + kl, val, len);

    int st = PRIDE_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        st = store_fail(&fs->base, PRIDE_ERR_IO, "file store: cannot create %s: %s", tmp,
                        strerror(errno));
        goto out;
    }
    while (done < total) {
        ssize_t w = write(fd, buf + done, total - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            st = store_fail(&fs->base, PRIDE_ERR_IO, "file store: cannot write %s: %s", tmp,
                            w < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += (size_t)w;
    }
    /* NFS reports delayed write errors at close. */
    if (close(fd) != 0 && st == PRIDE_OK)
        st = store_fail(&fs->base, PRIDE_ERR_IO, "file store: cannot write %s: %s", tmp,
                        strerror(errno));
    if (st == PRIDE_OK && rename(tmp, path) != 0)
        st = store_fail(&fs->base, PRIDE_ERR_IO, "file store: cannot rename %s to %s: %s", tmp,
                        path, strerror(errno));
    if (st != PRIDE_OK)
        unlink(tmp);
out:
    free(buf);
    return st;
}

/* Read key's file: PRIDE_OK with a malloc'd value, 1 when it does not exist (yet),
   or a failure. */
static int file_read(struct file_store *fs, const char *key, void **val, size_t *len)
{
    char path[FILE_PATH_CAP];
    file_path(fs, "", key, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        return store_fail(&fs->base, PRIDE_ERR_IO, "file store: cannot open %s: %s", path,
                          strerror(errno));
    }
    size_t kl = strlen(key), cap = FILE_HDR + kl + STORE_MAX_VALUE + 1, n = 0;
    int st = PRIDE_OK;
    struct stat sb;
    size_t want = fstat(fd, &sb) == 0 && sb.st_size > 0 && (uint64_t)sb.st_size < cap
                      ? (size_t)sb.st_size + 1
                      : 4096;
    unsigned char *buf = malloc(want);
    if (!buf) {
        st = store_fail(&fs->base, PRIDE_ERR_NOMEM, "file store: out of memory reading %s",
                        path);
        goto out;
    }
    for (;;) {
        if (n == want) { /* stat was stale (or absent): grow, but only up to the limit */
            size_t grown = want * 2 < cap ? want * 2 : cap;
            unsigned char *nb = want < cap ? realloc(buf, grown) : NULL;
            if (!nb) {
                st = store_fail(&fs->base, want < cap ? PRIDE_ERR_NOMEM : PRIDE_ERR_IO,
                                "file store: cannot read %s: %s", path,
                                want < cap ? "out of memory" : "larger than any value");
                goto out;
            }
            buf = nb;
            want = grown;
        }
        ssize_t r = read(fd, buf + n, want - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = store_fail(&fs->base, PRIDE_ERR_IO, "file store: cannot read %s: %s", path,
                            strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    uint32_t fkl = 0;
    for (int i = 0; i < 4 && n >= FILE_HDR; i++)
        fkl |= (uint32_t)buf[4 + i] << (8 * i);
    if (n < FILE_HDR || memcmp(buf, FILE_MAGIC, 4) || fkl != kl ||
        n - FILE_HDR < kl || memcmp(buf + FILE_HDR, key, kl)) {
        st = store_fail(&fs->base, PRIDE_ERR_IO, "file store: %s is not the file of key "
                        "\"%s\" (foreign or damaged file)", path, key);
        goto out;
    }
    *len = n - FILE_HDR - kl;
    memmove(buf, buf + FILE_HDR + kl, *len);
    *val = buf;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

static int file_set(struct pride_store *s, const char *key, const void *val, size_t len)
{
    return file_write((struct file_store *)s, key, val, len);
}

static int file_get(struct pride_store *s, const char *key, void **val, size_t *len,
                    int64_t deadline_ns)
{
    struct file_store *fs = (struct file_store *)s;
    int64_t delay = 0;
    for (;;) {
        int st = file_read(fs, key, val, len);
        if (st <= 0)
            return st;
        if (store_backoff(&delay, deadline_ns) == PRIDE_ERR_TIMEOUT)
            return store_fail(s, PRIDE_ERR_TIMEOUT, "file store: key \"%s\" did not appear "
                              "in %s before the deadline", key, fs->dir);
    }
}

static int file_add(struct pride_store *s, const char *key, int64_t delta, int64_t *result)
{
    struct file_store *fs = (struct file_store *)s;
    char lock[FILE_PATH_CAP];
    file_path(fs, ".l-", key, lock);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return store_fail(s, PRIDE_ERR_IO, "file store: cannot open lock %s: %s", lock,
                          strerror(errno));
    int st;
    int64_t delay = 0, deadline = pride_deadline_ns(fs->timeout_ms);
    for (;;) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
            break;
        if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
            st = store_fail(s, PRIDE_ERR_IO, "file store: cannot lock %s: %s", lock,
                            strerror(errno));
            goto out;
        }
        if (store_backoff(&delay, deadline) == PRIDE_ERR_TIMEOUT) {
            st = store_fail(s, PRIDE_ERR_TIMEOUT, "file store: lock %s stayed held for %d ms",
                            lock, fs->timeout_ms);
            goto out;
        }
    }
    void *old = NULL;
    size_t oldlen = 0;
    int64_t v = 0;
    st = file_read(fs, key, &old, &oldlen);
    if (st == 1) {
        st = PRIDE_OK;
    } else if (st == PRIDE_OK) {
        st = store_int_parse(old, oldlen, &v);
        free(old);
        if (st != PRIDE_OK) {
            store_fail(s, st, "file store: key \"%s\" does not hold a counter", key);
            goto out;
        }
    } else {
        goto out;
    }
    if ((delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta)) {
        st = store_fail(s, PRIDE_ERR_INVALID, "file store: adding %" PRId64 " to counter "
                        "\"%s\" (%" PRId64 ") overflows", delta, key, v);
        goto out;
    }
    v += delta;
    char txt[STORE_INT_CHARS];
    st = file_write(fs, key, txt, store_int_format(v, txt));
    if (st == PRIDE_OK)
        *result = v;
out:
    close(fd); /* releases the lock */
    return st;
}

static void file_close(struct pride_store *s)
{
    free(s);
}

static int file_open(const char *spec, const char *job, int rank, int nranks, int timeout_ms,
                     struct pride_store **out, char *why, size_t whylen)
{
    (void)rank;
    (void)nranks;
    char name[FILE_NAME_CAP];
    file_name(job, name);
    size_t sl = strlen(spec), nl = strlen(name);
    if (sl + 1 + nl >= FILE_DIR_CAP) {
        snprintf(why, whylen, "file store directory \"%.64s...\" is too long a path", spec);
        return PRIDE_ERR_INVALID;
    }
    struct file_store *fs = calloc(1, sizeof *fs);
    if (!fs) {
        snprintf(why, whylen, "file store: out of memory");
        return PRIDE_ERR_NOMEM;
    }
    fs->base.ops = &pride_store_file_ops;
    fs->timeout_ms = timeout_ms;
    memcpy(fs->dir, spec, sl);
    fs->dir[sl] = '/';
    memcpy(fs->dir + sl + 1, name, nl + 1);
    struct stat sb;
    if (mkdir(spec, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "file store: cannot create directory %s: %s", spec,
                 strerror(errno));
        goto fail;
    }
    if (stat(spec, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(why, whylen, "file store: %s is not a directory", spec);
        goto fail;
    }
    if (mkdir(fs->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "file store: cannot create job directory %s: %s", fs->dir,
                 strerror(errno));
        goto fail;
    }
    *out = &fs->base;
    return PRIDE_OK;
fail:
    free(fs);
    return PRIDE_ERR_IO;
}

const struct pride_store_ops pride_store_file_ops = {
    .size = sizeof(struct pride_store_ops),
    .scheme = "file",
    .open = file_open,
    .set = file_set,
    .get = file_get,
    .add = file_add,
    .close = file_close,
};
