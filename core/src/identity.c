/* Device identity record (identity page of internal flash). */
#include <stdbool.h>
#include <string.h>

#include "keel/crc32.h"
#include "keel/identity.h"

#include "le.h"

#define KIDENT_VERSION 1u
#define OFF_MAGIC 0u
#define OFF_VERSION 4u
#define OFF_LEN 6u
#define OFF_ID 8u
#define ID_FIELD 64u
#define OFF_CRC 124u

static bool id_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* Length of a valid id of at most KIDENT_ID_MAX characters, or 0 when it is not one. */
static size_t id_len(const char *id, size_t max_scan)
{
    size_t n = 0;

    while (n < max_scan && id[n] != '\0') {
        if (!id_char_ok(id[n]) || n == KIDENT_ID_MAX) {
            return 0u;
        }
        n++;
    }
    return n;
}

kerr_t kident_check_id(const char *id)
{
    if (id == NULL || id_len(id, KIDENT_ID_MAX + 1u) == 0u) {
        return KERR_INVAL;
    }
    return KERR_OK;
}

kerr_t kident_encode(const kident_t *id, uint8_t out[KIDENT_SIZE])
{
    size_t n = id_len(id->id, sizeof(id->id));

    if (n == 0u) {
        return KERR_INVAL;
    }
    memset(out, 0, KIDENT_SIZE);
    le_put32(out + OFF_MAGIC, KIDENT_MAGIC);
    le_put16(out + OFF_VERSION, KIDENT_VERSION);
    le_put16(out + OFF_LEN, (uint16_t)n);
    memcpy(out + OFF_ID, id->id, n);
    le_put32(out + OFF_CRC, kcrc32(0, out, OFF_CRC));
    return KERR_OK;
}

kerr_t kident_decode(const uint8_t in[KIDENT_SIZE], kident_t *out)
{
    if (le_get32(in + OFF_MAGIC) != KIDENT_MAGIC || le_get16(in + OFF_VERSION) != KIDENT_VERSION) {
        return KERR_FORMAT;
    }
    if (le_get32(in + OFF_CRC) != kcrc32(0, in, OFF_CRC)) {
        return KERR_CRC;
    }
    uint16_t n = le_get16(in + OFF_LEN);
    if (n == 0u || n > KIDENT_ID_MAX) {
        return KERR_INVAL;
    }
    kident_t id;
    memset(&id, 0, sizeof(id));
    memcpy(id.id, in + OFF_ID, n);
    /* The id must be exactly n valid characters, NUL-padded to the end of its field. */
    if (id_len(id.id, sizeof(id.id)) != n) {
        return KERR_INVAL;
    }
    for (uint32_t i = OFF_ID + n; i < OFF_ID + ID_FIELD; i++) {
        if (in[i] != 0u) {
            return KERR_INVAL;
        }
    }
    *out = id;
    return KERR_OK;
}
