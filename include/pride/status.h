/**
 * @file pride/status.h
 * @brief Status codes returned by every pride function.
 *
 * Every function returns PRIDE_OK (0) or a negative PRIDE_ERR_* status. Output
 * parameters are written only on success.
 */
#ifndef PRIDE_STATUS_H
#define PRIDE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes. */
enum {
    PRIDE_OK = 0,                /**< success */
    PRIDE_ERR_INVALID = -1,      /**< an argument is invalid */
    PRIDE_ERR_NOMEM = -2,        /**< out of memory */
    PRIDE_ERR_TIMEOUT = -3,      /**< a deadline passed */
    PRIDE_ERR_PEER = -4,         /**< a peer closed, died or sent garbage */
    PRIDE_ERR_MISMATCH = -5,     /**< ranks disagree on a collective's arguments */
    PRIDE_ERR_TRANSPORT = -6,    /**< transport not available / failed to start */
    PRIDE_ERR_AUTH = -7,         /**< handshake failed authentication */
    PRIDE_ERR_ABORTED = -8,      /**< pride_abort() was called */
    PRIDE_ERR_UNSUPPORTED = -9,  /**< not supported (yet, or by this build) */
    PRIDE_ERR_IO = -10           /**< a file or system call failed */
};

/**
 * @brief A short English name for a status code.
 * @param status a PRIDE_OK or PRIDE_ERR_* value
 * @return a static string, never NULL ("unknown status" for other values)
 */
const char *pride_strerror(int status);

#ifdef __cplusplus
}
#endif
#endif
