/* A refusal answered to a client (REST or upload): its reason formatted into the caller's buffer. */
#ifndef KEEL_SERVER_KEELD_KD_WHY_H
#define KEEL_SERVER_KEELD_KD_WHY_H

#include <stddef.h>

/* Format the reason into why (cap bytes, always terminated) and return status (the HTTP code). */
unsigned kd_refuse(char *why, size_t cap, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* KEEL_SERVER_KEELD_KD_WHY_H */
