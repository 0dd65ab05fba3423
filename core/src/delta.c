/*
 * What the delta encoder and decoder share: the header and the prediction of moved branches
 * and pointers (docs/delta.md).
 */
#include "keel/delta.h"

#include "le.h"

kerr_t kdlt_parse_header(const uint8_t *p, size_t len, kdlt_hdr_t *out)
{
    if (len < KDLT_HDR_SIZE || le_get32(p + KDLT_OFF_MAGIC) != KDLT_MAGIC ||
        p[KDLT_OFF_VERSION] != KDLT_VERSION || p[KDLT_OFF_FLAGS] != 0 ||
        le_get16(p + KDLT_OFF_HDR_SIZE) != KDLT_HDR_SIZE)
        return KERR_DLT_FORMAT;
    out->old_len = le_get32(p + KDLT_OFF_OLD_LEN);
    out->new_len = le_get32(p + KDLT_OFF_NEW_LEN);
    out->old_crc = le_get32(p + KDLT_OFF_OLD_CRC);
    out->new_crc = le_get32(p + KDLT_OFF_NEW_CRC);
    out->base = le_get32(p + KDLT_OFF_BASE);
    out->body_len = le_get32(p + KDLT_OFF_BODY_LEN);
    /* A body shorter than the coder's 5-byte start cannot be valid; nor an empty result. */
    if (out->new_len == 0 || out->body_len < 5)
        return KERR_DLT_FORMAT;
    return KERR_OK;
}

/* Where old offset off goes in the new image; 0 if the map says nothing (a hole, or outside). */
static int map_lookup(const kdlt_map_t *m, uint32_t off, uint32_t *out)
{
    uint32_t lo = 0, hi = m->n;
    if (off >= m->old_len || m->n == 0 || off < m->seg[0].start)
        return 0;
    while (hi - lo > 1) { /* the last entry with start <= off */
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->seg[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    if (m->seg[lo].delta == KDLT_MAP_HOLE)
        return 0;
    *out = off + (uint32_t)m->seg[lo].delta;
    return 1;
}

/*
 * Thumb-2 BL (T1) and B.W (T4): hw1 = 11110 S imm10, hw2 = 1 1 J1 x J2 imm11 with x = 1 (BL)
 * or hw2 = 1 0 J1 1 J2 imm11 (B.W). Target = address + 4 + SignExtend(S:I1:I2:imm10:imm11:0),
 * I1 = NOT(J1 XOR S), I2 = NOT(J2 XOR S).
 */
static int is_bl(uint32_t hw1, uint32_t hw2)
{
    return (hw1 & 0xF800u) == 0xF000u && ((hw2 & 0xD000u) == 0xD000u || (hw2 & 0xD000u) == 0x9000u);
}

static int32_t bl_offset(uint32_t hw1, uint32_t hw2)
{
    uint32_t s = (hw1 >> 10) & 1u, j1 = (hw2 >> 13) & 1u, j2 = (hw2 >> 11) & 1u;
    uint32_t i1 = (j1 ^ s) ^ 1u, i2 = (j2 ^ s) ^ 1u;
    uint32_t v = (s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3FFu) << 12) | ((hw2 & 0x7FFu) << 1);
    return (int32_t)(v << 7) >> 7;
}

unsigned kdlt_predict(const kdlt_map_t *map, uint32_t opos, uint32_t npos, const uint8_t *o,
                      unsigned n, uint8_t out[4])
{
    uint32_t t;
    out[0] = o[0];
    if (n < 4 || ((opos | npos) & 1u) != 0)
        return 1;
    if (((opos | npos) & 3u) == 0) { /* a literal-pool word pointing into the image */
        uint32_t w = le_get32(o);
        if (w - map->base < map->old_len && map_lookup(map, w - map->base, &t)) {
            le_put32(out, map->base + t);
            return 4;
        }
    }
    uint32_t hw1 = le_get16(o), hw2 = le_get16(o + 2);
    if (!is_bl(hw1, hw2))
        return 1;
    uint32_t target = opos + 4u + (uint32_t)bl_offset(hw1, hw2);
    if (!map_lookup(map, target, &t))
        return 1;
    int32_t off = (int32_t)(t - (npos + 4u));
    if (off < -(1 << 24) || off >= (1 << 24))
        return 1;
    uint32_t v = (uint32_t)off, s = (v >> 24) & 1u;
    uint32_t j1 = ((v >> 23) & 1u) ^ 1u ^ s, j2 = ((v >> 22) & 1u) ^ 1u ^ s;
    le_put16(out, (uint16_t)(0xF000u | (s << 10) | ((v >> 12) & 0x3FFu)));
    le_put16(out + 2, (uint16_t)((hw2 & 0xD000u) | (j1 << 13) | (j2 << 11) | ((v >> 1) & 0x7FFu)));
    return 4;
}
