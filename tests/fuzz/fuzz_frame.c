/*
 * libFuzzer target: the frame header checks. Any 48 bytes go through
 * pride_frame_check; a header it accepts is compared (pride_meta_compare) with a
 * meta made of the next bytes and described, as the receive path does. Nothing may
 * crash, read out of bounds or leave a sentence unterminated.
 */
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "pride/pride.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pride_frame_hdr h;
    struct pride_meta mine;
    char why[400], desc[160];
    if (size < sizeof h)
        return 0;
    memcpy(&h, data, sizeof h);
    memset(&mine, 0, sizeof mine);
    memcpy(&mine, data + sizeof h,
           size - sizeof h < sizeof mine ? size - sizeof h : sizeof mine);
    int st = pride_frame_check(&h, why, sizeof why);
    if (st != PRIDE_OK) {
        if (st != PRIDE_ERR_PEER || strlen(why) >= sizeof why)
            __builtin_trap();
        return 0;
    }
    if (h.kind == PRIDE_FRAME_ERROR && h.len > PRIDE_FRAME_MAX_REASON)
        __builtin_trap();
    st = pride_meta_compare(&mine, &h.meta, why, sizeof why);
    if (st != PRIDE_OK && (st != PRIDE_ERR_MISMATCH || strlen(why) >= sizeof why))
        __builtin_trap();
    pride_meta_describe(&mine, desc, sizeof desc);
    pride_meta_describe(&h.meta, desc, 8); /* a short buffer truncates, never overflows */
    (void)pride_coll_name(mine.coll);
    return 0;
}
