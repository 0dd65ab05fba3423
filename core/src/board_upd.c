/*
 * The update engine's configuration for a board (keel/board.h): the one place the board's app
 * slot, journal and staging area become an upd_config_t, for the microvisor, keel's factory
 * install and the simulated devices alike.
 */
#include "keel/board.h"

#include <string.h>

#include "keel/upd.h"

void kboard_upd_config(const kboard_t *b, kflash_t *iflash, kflash_t *qspi, upd_config_t *out)
{
    memset(out, 0, sizeof *out);
    out->iflash = iflash;
    out->region_off = b->ipart.app_slot.off;
    out->region_len = b->ipart.app_slot.size;
    out->journal_off = b->ipart.journal;
    out->qspi = qspi;
    out->stage_off = b->qpart.stage.off;
    out->stage_len = b->qpart.stage.size;
    out->trust.device_type = b->device_type;
}
