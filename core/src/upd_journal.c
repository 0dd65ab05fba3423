/*
 * The update journal (format and the fresh-page rule: upd_journal.h).
 *
 * Mount never writes: a boot that finds nothing to do leaves the journal untouched. Append
 * programs one whole record per kflash_program() call (one operation: a cut tears at most that
 * record) and only ever into a slot it knows is erased in this boot.
 */
#include <string.h>

#include "keel/crc32.h"
#include "keel/upd_journal.h"

#include "le.h"

#define SAVED_BYTES (UPD_MAX_PAGES / 8u)
#define SCAN 1024u /* mount reads this much at a time (a multiple of UPD_JREC_SIZE) */

void upd_jrec_encode(const upd_pstate_t *s, uint32_t seq, uint8_t out[UPD_JREC_SIZE])
{
    memset(out, 0, UPD_JREC_SIZE);
    le_put32(out + 0, UPD_JREC_MAGIC);
    le_put32(out + 4, seq);
    out[8] = s->phase;
    out[9] = s->result;
    le_put16(out + 10, s->step);
    le_put32(out + 12, s->stage_gen);
    le_put32(out + 16, s->apply_gen);
    le_put32(out + 20, s->counter);
    le_put32(out + 24, s->version);
    le_put32(out + 28, s->reason);
    memcpy(out + 32, s->manifest_sha, 32);
    memcpy(out + 64, s->old_sha, 32);
    memcpy(out + 96, s->saved, SAVED_BYTES);
    le_put32(out + 124, kcrc32(0, out, 124));
}

kerr_t upd_jrec_decode(const uint8_t in[UPD_JREC_SIZE], upd_pstate_t *out, uint32_t *out_seq)
{
    if (le_get32(in) != UPD_JREC_MAGIC) {
        return KERR_FORMAT;
    }
    if (le_get32(in + 124) != kcrc32(0, in, 124) || le_get32(in + 120) != 0u ||
        in[8] > UPD_PHASE_ROLLBACK || le_get32(in + 4) == 0u) {
        return KERR_CRC;
    }
    *out_seq = le_get32(in + 4);
    memset(out, 0, sizeof(*out));
    out->phase = in[8];
    out->result = in[9];
    out->step = le_get16(in + 10);
    out->stage_gen = le_get32(in + 12);
    out->apply_gen = le_get32(in + 16);
    out->counter = le_get32(in + 20);
    out->version = le_get32(in + 24);
    out->reason = le_get32(in + 28);
    memcpy(out->manifest_sha, in + 32, 32);
    memcpy(out->old_sha, in + 64, 32);
    memcpy(out->saved, in + 96, SAVED_BYTES);
    return KERR_OK;
}

kerr_t upd_journal_mount(upd_journal_t *j, kflash_t *f, uint32_t off, upd_pstate_t *out)
{
    memset(j, 0, sizeof(*j));
    memset(out, 0, sizeof(*out));
    j->f = f;
    j->off = off;
    j->page = f->geo.erase_size;
    j->fresh = true;
    if (j->page < UPD_JREC_SIZE || (off & (j->page - 1u)) != 0u ||
        UPD_JREC_SIZE % f->geo.prog_unit != 0u || off > f->geo.size ||
        f->geo.size - off < UPD_JOURNAL_PAGES * j->page) {
        return KERR_INVAL;
    }
    /* Read in SCAN-byte pieces: on the device every read is a semihosting trap. */
    uint8_t chunk[SCAN];
    for (uint32_t p = 0; p < UPD_JOURNAL_PAGES; p++) {
        for (uint32_t at = 0; at < j->page; at += SCAN) {
            uint32_t n = j->page - at < SCAN ? j->page - at : SCAN;
            kerr_t err = kflash_read(f, off + p * j->page + at, chunk, n);
            if (err != KERR_OK) {
                return err;
            }
            for (uint32_t i = 0; i + UPD_JREC_SIZE <= n; i += UPD_JREC_SIZE) {
                upd_pstate_t s;
                uint32_t seq;
                if (upd_jrec_decode(chunk + i, &s, &seq) == KERR_OK && seq > j->seq) {
                    j->seq = seq;
                    j->active = p;
                    *out = s;
                }
            }
        }
    }
    return KERR_OK;
}

kerr_t upd_journal_append(upd_journal_t *j, const upd_pstate_t *s)
{
    uint32_t slots = j->page / UPD_JREC_SIZE;
    if (j->fresh || j->next_slot >= slots) {
        /* The other page holds only older snapshots: erase it and start there. */
        uint32_t other = (j->active + 1u) % UPD_JOURNAL_PAGES;
        kerr_t err = kflash_erase(j->f, j->off + other * j->page);
        if (err != KERR_OK) {
            return err;
        }
        j->erases++;
        j->active = other;
        j->next_slot = 0;
        j->fresh = false;
    }
    uint8_t rec[UPD_JREC_SIZE];
    upd_jrec_encode(s, j->seq + 1u, rec);
    uint32_t at = j->off + j->active * j->page + j->next_slot * UPD_JREC_SIZE;
    /*
     * The slot and the sequence number are spent whatever happens: a failed program may still
     * have left a valid record (a cut after the last bit), so neither is ever used twice.
     */
    j->next_slot++;
    j->seq++;
    kerr_t err = kflash_program(j->f, at, rec, sizeof(rec));
    j->writes += err == KERR_OK ? 1u : 0u;
    return err;
}
