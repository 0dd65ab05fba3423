/*
 * keel.h API v1: the secure entry points the app calls through NSC veneers.
 *
 * Every pointer from the app is checked with the CMSE address-range test (the SAU decides it is
 * non-secure memory; the app's own MPU decides its privilege may touch it) *and* must lie in
 * the app's code or RAM region, for the whole length, without wrapping. Inputs are copied into
 * secure memory before use; outputs are built in secure memory and copied out last. A bad
 * pointer returns KEEL_EFAULT and is logged; it never faults.
 *
 * Re-entrancy: an app interrupt may preempt any of these and call another. Shared state is only
 * touched inside uv_crit_enter() sections (which the app's interrupts cannot preempt), and the
 * rest works on the caller's stack.
 */
#include <arm_cmse.h>
#include <string.h>

#include "board.h"
#include "keel.h"
#include "port.h"
#include "uv.h"
#include "net/net_chan.h"
#include "uv_upd.h"
#include "net/uv_net.h"

#define ENTRY __attribute__((cmse_nonsecure_entry, used))

static bool caller_unprivileged(void)
{
    uint32_t control, ipsr;
    __asm__ volatile("mrs %0, control_ns\n mrs %1, ipsr" : "=r"(control), "=r"(ipsr));
    return (control & 1u) && (ipsr & 0x1FFu) == 0u;
}

/* true when [p, p+len) is app memory the caller may read (write: and write). */
static bool app_ptr_ok(const char *fn, const void *p, size_t len, bool write)
{
    uintptr_t a = (uintptr_t)p;
    int flags = CMSE_NONSECURE | (write ? CMSE_MPU_READWRITE : CMSE_MPU_READ);
    if (caller_unprivileged())
        flags |= CMSE_MPU_UNPRIV;
    bool ok = len > 0u && len <= 0x7FFFFFFFu &&
              board_app_mem((uint32_t)a, (uint32_t)len) &&
              cmse_check_address_range((void *)a, len, flags) != NULL;
    if (!ok)
        uv_log("bad pointer from app in %s: 0x%08lx+%lu", fn, (unsigned long)a, (unsigned long)len);
    return ok;
}

ENTRY keel_status_t keel_version_get(keel_version_t *out)
{
    keel_version_t v = {UV_VERSION, KEEL_API_VERSION, uv_app.hdr.version};
    if (!app_ptr_ok(__func__, out, sizeof(*out), true))
        return KEEL_EFAULT;
    memcpy(out, &v, sizeof(v));
    return KEEL_OK;
}

ENTRY keel_status_t keel_device_id_get(char *out, size_t cap)
{
    size_t n = strnlen(uv_ident.id, sizeof(uv_ident.id) - 1u) + 1u;
    if (!app_ptr_ok(__func__, out, cap, true))
        return KEEL_EFAULT;
    if (cap < n)
        return KEEL_ENOSPC;
    memcpy(out, uv_ident.id, n);
    return KEEL_OK;
}

ENTRY keel_status_t keel_time_get_us(uint64_t *out_us)
{
    uint64_t now = uv_uptime_us();
    if (!app_ptr_ok(__func__, out_us, sizeof(*out_us), true))
        return KEEL_EFAULT;
    memcpy(out_us, &now, sizeof(now));
    return KEEL_OK;
}

ENTRY keel_status_t keel_log_write(keel_log_level_t level, const char *msg, size_t len)
{
    static const char *const prefix[] = {"[app] E ", "[app] W ", "[app] I ", "[app] D "};
    if ((uint32_t)level > KEEL_LOG_DEBUG)
        return KEEL_EINVAL;
    if (len == 0u)
        return KEEL_OK;
    if (!app_ptr_ok(__func__, msg, len, false)) /* the whole buffer the app describes */
        return KEEL_EFAULT;
    if (len > KEEL_LOG_MAX)
        len = KEEL_LOG_MAX;
    char copy[KEEL_LOG_MAX];
    memcpy(copy, msg, len);
    uv_log_raw(prefix[level], copy, (uint32_t)len);
    uv_net_log((uint32_t)level, 0u /* LOG_SOURCE_APP */, copy, (uint32_t)len);
    return KEEL_OK;
}

ENTRY keel_status_t keel_notify_setup(keel_notification_t *ring, uint32_t slots, uint32_t irq)
{
    if (slots < KEEL_NOTIFY_MIN_SLOTS || slots > KEEL_NOTIFY_MAX_SLOTS)
        return KEEL_EINVAL;
    if (!app_ptr_ok(__func__, ring, slots * sizeof(keel_notification_t), true) ||
        ((uintptr_t)ring & 3u) != 0u)
        return KEEL_EFAULT;
    return uv_notify_setup((uint32_t)(uintptr_t)ring, slots, irq);
}

ENTRY keel_status_t keel_watchdog_start(uint32_t timeout_ms)
{
    return uv_wdog_start(timeout_ms);
}

ENTRY keel_status_t keel_watchdog_kick(void)
{
    return uv_wdog_kick();
}

ENTRY keel_status_t keel_app_restart(void)
{
    uv_sup_request_stop(KCRASH_RESTART);
    /* The service preempts right here (it outranks every app priority) and never comes back.
     * Only inside a critical section could it be held off; bounded, then report busy. */
    for (uint32_t spin = 0; spin < 1000000u; spin++)
        __asm__ volatile("nop");
    return KEEL_EBUSY;
}

/* ---- app channels (net/net_chan.c keeps the queues) ---- */

ENTRY keel_status_t keel_channel_open(const char *name, uint32_t *out_handle)
{
    /* The name's length is unknown until its NUL: each byte is checked before it is read, and
     * the copy stops at KEEL_CHANNEL_NAME_MAX + 1 bytes, so a name running into foreign memory
     * is a KEEL_EFAULT and an unterminated long one a KEEL_EINVAL. */
    char copy[KEEL_CHANNEL_NAME_MAX + 1];
    uint32_t handle = 0;
    size_t n = 0;
    for (; n < sizeof(copy); n++) {
        if (!app_ptr_ok(__func__, name + n, 1u, false))
            return KEEL_EFAULT;
        copy[n] = name[n];
        if (copy[n] == '\0')
            break;
    }
    if (n == sizeof(copy))
        return KEEL_EINVAL;
    if (!app_ptr_ok(__func__, out_handle, sizeof(*out_handle), true))
        return KEEL_EFAULT;
    keel_status_t st = net_chan_open(copy, &handle);
    if (st == KEEL_OK)
        memcpy(out_handle, &handle, sizeof(handle));
    return st;
}

ENTRY keel_status_t keel_channel_send(uint32_t handle, const void *data, size_t len, uint32_t *out_seq)
{
    uint32_t seq = 0;
    if (len == 0u || len > KEEL_CHANNEL_DATA_MAX)
        return KEEL_EINVAL;
    if (!app_ptr_ok(__func__, data, len, false) ||
        (out_seq != NULL && !app_ptr_ok(__func__, out_seq, sizeof(*out_seq), true)))
        return KEEL_EFAULT;
    keel_status_t st = net_chan_send(handle, data, (uint32_t)len, &seq);
    if (st == KEEL_OK && out_seq != NULL)
        memcpy(out_seq, &seq, sizeof(seq));
    return st;
}

ENTRY keel_status_t keel_channel_recv(uint32_t handle, void *buf, size_t cap, size_t *out_len)
{
    uint32_t n = 0;
    if (!app_ptr_ok(__func__, out_len, sizeof(*out_len), true) ||
        !app_ptr_ok(__func__, buf, cap, true))
        return KEEL_EFAULT;
    keel_status_t st = net_chan_recv(handle, buf, cap > KEEL_CHANNEL_DATA_MAX ? KEEL_CHANNEL_DATA_MAX : (uint32_t)cap, &n);
    if (st == KEEL_OK || st == KEEL_ENOSPC) {
        size_t len = n;
        memcpy(out_len, &len, sizeof(len));
    }
    return st;
}

ENTRY keel_status_t keel_channel_close(uint32_t handle)
{
    return net_chan_close(handle);
}

/* ---- updates (uv_upd.c runs the engine) ---- */

ENTRY keel_status_t keel_update_status(keel_update_status_t *out)
{
    keel_update_status_t s;
    if (!app_ptr_ok(__func__, out, sizeof(*out), true))
        return KEEL_EFAULT;
    uv_upd_status_get(&s);
    memcpy(out, &s, sizeof(s));
    return KEEL_OK;
}

ENTRY keel_status_t keel_update_apply(void)
{
    keel_status_t st = uv_upd_apply_request();
    if (st != KEEL_OK)
        return st;
    /* As keel_app_restart: the service stops the app right here and the call never returns
     * (the supervisor applies the update); bounded in case a critical section holds it off. */
    for (uint32_t spin = 0; spin < 1000000u; spin++)
        __asm__ volatile("nop");
    return KEEL_EBUSY;
}

ENTRY keel_status_t keel_update_confirm(void)
{
    return uv_upd_confirm_request();
}
