/* Status names and element sizes: the small facts of the public headers. */
#include "pride/pride.h"

const char *pride_strerror(int status)
{
    switch (status) {
    case PRIDE_OK: return "success";
    case PRIDE_ERR_INVALID: return "invalid argument";
    case PRIDE_ERR_NOMEM: return "out of memory";
    case PRIDE_ERR_TIMEOUT: return "timed out";
    case PRIDE_ERR_PEER: return "peer failed";
    case PRIDE_ERR_MISMATCH: return "ranks disagree on a collective's arguments";
    case PRIDE_ERR_TRANSPORT: return "transport failed";
    case PRIDE_ERR_AUTH: return "authentication failed";
    case PRIDE_ERR_ABORTED: return "aborted";
    case PRIDE_ERR_UNSUPPORTED: return "unsupported";
    case PRIDE_ERR_IO: return "I/O error";
    default: return "unknown status";
    }
}

size_t pride_dtype_size(pride_dtype_t dt)
{
    switch (dt) {
    case PRIDE_INT8:
    case PRIDE_UINT8: return 1;
    case PRIDE_FLOAT16:
    case PRIDE_BFLOAT16: return 2;
    case PRIDE_INT32:
    case PRIDE_UINT32:
    case PRIDE_FLOAT32: return 4;
    case PRIDE_INT64:
    case PRIDE_UINT64:
    case PRIDE_FLOAT64: return 8;
    }
    return 0;
}
