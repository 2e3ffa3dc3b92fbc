/*
 * The wire header every message carries, shared by all backends, and its checks.
 * A receiver validates every field before it trusts the payload; the parser is the
 * one place untrusted bytes are interpreted, so it is small and fuzzed.
 */
#ifndef PRIDE_FRAME_H
#define PRIDE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PRIDE_FRAME_MAGIC 0x45445250u /* "PRDE" little-endian */
#define PRIDE_PROTO_VERSION 1u

enum pride_frame_kind {
    PRIDE_FRAME_DATA = 1,  /* a collective's message */
    PRIDE_FRAME_ERROR = 2, /* the sender failed collective seq: payload is its reason */
};

/* Collective kinds, as carried in meta.coll. */
enum pride_coll_kind {
    PRIDE_COLL_P2P = 0, /* raw point-to-point (tests, tools) */
    PRIDE_COLL_ALLREDUCE,
    PRIDE_COLL_REDUCE_SCATTER,
    PRIDE_COLL_ALLGATHER,
    PRIDE_COLL_BROADCAST,
    PRIDE_COLL_REDUCE,
    PRIDE_COLL_ALLTOALL,
    PRIDE_COLL_BARRIER,
    PRIDE_COLL_VOTE,
    PRIDE_COLL_VOTE_COUNT,
    PRIDE_COLL_VOTE_ALLGATHER,
    PRIDE_COLL_KIND_MAX
};

/* A collective's arguments; two ranks in the same collective carry equal metas. */
struct pride_meta {
    uint8_t coll;   /* enum pride_coll_kind */
    uint8_t dtype;  /* pride_dtype_t */
    uint8_t op;     /* pride_op_t, or the tie rule for votes */
    uint8_t algo;   /* algorithm, where ranks must agree on it */
    int32_t root;   /* root rank, or -1 */
    uint64_t count; /* element count as given by the caller */
};

/* 48 bytes, little-endian on the wire (all supported hosts are). */
struct pride_frame_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t kind;     /* enum pride_frame_kind */
    uint16_t flags;   /* PRIDE_FRAME_F_* */
    uint32_t tag;     /* message index within the collective */
    int32_t status;   /* ERROR frames: the sender's status; see PRIDE_FRAME_F_CRC32C */
    uint64_t seq;     /* collective sequence number */
    struct pride_meta meta;
    uint64_t len;     /* payload bytes that follow */
};

/* DATA frames with PRIDE_CHECKSUM=crc32c: status holds the CRC32C of the header (with
   status 0), and a 4-byte little-endian trailer after the payload holds the CRC32C
   of the payload. No other flag exists. */
#define PRIDE_FRAME_F_CRC32C 0x0001u

_Static_assert(sizeof(struct pride_frame_hdr) == 48, "frame header is 48 bytes on the wire");

/* Largest payload a frame may announce (guards allocations for unexpected frames). */
#define PRIDE_FRAME_MAX_LEN (UINT64_C(1) << 40)
/* Largest ERROR reason payload. */
#define PRIDE_FRAME_MAX_REASON 512

/* Check a received header's own fields (magic, version, kind, ranges). Returns 0 or
   a negative PRIDE_ERR_*, with a sentence in why (size whylen). */
int pride_frame_check(const struct pride_frame_hdr *h, char *why, size_t whylen);

/* Compare a frame's meta with the receiver's; returns PRIDE_OK or PRIDE_ERR_MISMATCH
   and a sentence naming both sides' arguments. */
int pride_meta_compare(const struct pride_meta *mine, const struct pride_meta *theirs,
                       char *why, size_t whylen);

/* "allreduce(count=10, float32, sum)" style description. */
void pride_meta_describe(const struct pride_meta *m, char *out, size_t outlen);

const char *pride_coll_name(int coll);

#endif
