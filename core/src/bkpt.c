/*
 * Software breakpoints: BKPT #0 written over the first halfword of an instruction.
 *
 * A 16-bit BKPT over a 32-bit instruction is fine: the core decodes the BKPT and never looks
 * at the second halfword. Each plant and restore is read back, because the app's code lives
 * in RAM on QEMU but may be flash elsewhere, where a silent no-op write would otherwise leave
 * a breakpoint that never fires (or one that never goes away).
 */
#include "keel/bkpt.h"

#include <stddef.h>

static kerr_t write16(bkpt_sw_t *sw, uint32_t addr, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)}, back[2];
    kerr_t err = sw->mem->write(sw->mem_ctx, addr, b, 2);
    if (err == KERR_OK)
        err = sw->mem->read(sw->mem_ctx, addr, back, 2);
    if (err == KERR_OK && (back[0] != b[0] || back[1] != b[1]))
        err = KERR_IO;
    return err;
}

static bkpt_sw_entry_t *find(bkpt_sw_t *sw, uint32_t addr)
{
    for (size_t i = 0; i < BKPT_SW_MAX; i++)
        if (sw->e[i].refs && sw->e[i].addr == addr)
            return &sw->e[i];
    return NULL;
}

static kerr_t sw_insert(void *impl, uint32_t addr)
{
    bkpt_sw_t *sw = impl;
    if (addr & 1u)
        return KERR_INVAL;
    bkpt_sw_entry_t *e = find(sw, addr);
    if (e) {
        if (e->refs == UINT16_MAX)
            return KERR_NOMEM;
        e->refs++;
        return KERR_OK;
    }
    for (size_t i = 0; i < BKPT_SW_MAX && !e; i++)
        if (!sw->e[i].refs)
            e = &sw->e[i];
    if (!e)
        return KERR_NOMEM;
    uint8_t b[2];
    kerr_t err = sw->mem->read(sw->mem_ctx, addr, b, 2);
    if (err != KERR_OK)
        return err;
    uint16_t orig = (uint16_t)(b[0] | b[1] << 8);
    err = write16(sw, addr, BKPT_INSN);
    if (err != KERR_OK) {
        (void)write16(sw, addr, orig); /* best effort: leave the code as it was */
        return err;
    }
    e->addr = addr;
    e->orig = orig;
    e->refs = 1;
    return KERR_OK;
}

static kerr_t sw_remove(void *impl, uint32_t addr)
{
    bkpt_sw_t *sw = impl;
    bkpt_sw_entry_t *e = find(sw, addr);
    if (!e)
        return KERR_INVAL;
    if (e->refs > 1) {
        e->refs--;
        return KERR_OK;
    }
    kerr_t err = write16(sw, addr, e->orig);
    if (err == KERR_OK)
        e->refs = 0; /* kept on failure, so remove_all can try again */
    return err;
}

static kerr_t sw_remove_all(void *impl)
{
    bkpt_sw_t *sw = impl;
    kerr_t first = KERR_OK;
    for (size_t i = 0; i < BKPT_SW_MAX; i++) {
        if (!sw->e[i].refs)
            continue;
        kerr_t err = write16(sw, sw->e[i].addr, sw->e[i].orig);
        if (err == KERR_OK)
            sw->e[i].refs = 0;
        else if (first == KERR_OK)
            first = err;
    }
    return first;
}

static bool sw_is_set(void *impl, uint32_t addr)
{
    return find(impl, addr) != NULL;
}

/* Byte k (0 or 1) of a breakpoint's halfword at e->addr, if it falls in [addr, addr+len). */
static bool overlap(const bkpt_sw_entry_t *e, unsigned k, uint32_t addr, uint32_t len,
                    uint32_t *out_index)
{
    uint32_t a = e->addr + k;
    if (a < addr || a - addr >= len)
        return false;
    *out_index = a - addr;
    return true;
}

static kerr_t sw_read(void *impl, uint32_t addr, uint8_t *out, uint32_t len)
{
    bkpt_sw_t *sw = impl;
    kerr_t err = sw->mem->read(sw->mem_ctx, addr, out, len);
    if (err != KERR_OK)
        return err;
    for (size_t i = 0; i < BKPT_SW_MAX; i++) {
        const bkpt_sw_entry_t *e = &sw->e[i];
        uint32_t at;
        if (!e->refs)
            continue;
        for (unsigned k = 0; k < 2; k++)
            if (overlap(e, k, addr, len, &at))
                out[at] = (uint8_t)(e->orig >> (8 * k));
    }
    return KERR_OK;
}

/*
 * The new bytes go to memory as given, then each breakpoint in the range takes its new
 * original from them and is planted again. The app is halted throughout, so the moment
 * without the BKPT is never executed.
 */
static kerr_t sw_write(void *impl, uint32_t addr, const uint8_t *data, uint32_t len)
{
    bkpt_sw_t *sw = impl;
    kerr_t err = sw->mem->write(sw->mem_ctx, addr, data, len);
    if (err != KERR_OK)
        return err;
    for (size_t i = 0; i < BKPT_SW_MAX; i++) {
        bkpt_sw_entry_t *e = &sw->e[i];
        uint32_t at;
        bool hit = false;
        if (!e->refs)
            continue;
        for (unsigned k = 0; k < 2; k++) {
            if (overlap(e, k, addr, len, &at)) {
                uint32_t keep = e->orig & ~(0xFFu << (8 * k));
                e->orig = (uint16_t)(keep | (uint32_t)data[at] << (8 * k));
                hit = true;
            }
        }
        if (hit) {
            kerr_t e2 = write16(sw, e->addr, BKPT_INSN);
            if (e2 != KERR_OK && err == KERR_OK)
                err = e2;
        }
    }
    return err;
}

static const bkpt_ops_t sw_ops = {
    sw_insert, sw_remove, sw_remove_all, sw_is_set, sw_read, sw_write,
};

kerr_t bkpt_sw_init(bkpt_sw_t *sw, const bkpt_mem_ops_t *mem, void *mem_ctx, bkpt_t *out)
{
    if (!sw || !mem || !mem->read || !mem->write || !out)
        return KERR_INVAL;
    for (size_t i = 0; i < BKPT_SW_MAX; i++)
        sw->e[i] = (bkpt_sw_entry_t){0, 0, 0};
    sw->mem = mem;
    sw->mem_ctx = mem_ctx;
    out->ops = &sw_ops;
    out->impl = sw;
    return KERR_OK;
}

unsigned bkpt_sw_count(const bkpt_sw_t *sw)
{
    unsigned n = 0;
    for (size_t i = 0; i < BKPT_SW_MAX; i++)
        n += sw->e[i].refs != 0;
    return n;
}
