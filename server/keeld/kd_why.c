/* A refusal's reason (kd_why.h). */
#include "kd_why.h"

#include <stdarg.h>
#include <stdio.h>

unsigned kd_refuse(char *why, size_t cap, unsigned status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return status;
}
