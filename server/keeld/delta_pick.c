/* keeld: delta bundles per base and the per-device choice (delta_pick.h). */
#include "delta_pick.h"

#include <stdio.h>
#include <string.h>

#include "kd_log.h"
#include "keel/err.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
}

store_rc_t delta_uploaded(store_t *s, int64_t id, const kbdl_manifest_t *m)
{
    char base[65], result[65];

    hex(m->layers[0].base_sha, 32, base);
    hex(m->layers[0].region_sha, 32, result);
    return s->ops->delta_add(s, id, base, result, m->layers[0].patch_size);
}

void delta_describe(store_t *s, json_t *bundle)
{
    if (!json_is_object(bundle)) {
        return;
    }
    json_t *d = s->ops->delta_get(s, json_integer_value(json_object_get(bundle, "id")));
    json_object_set_new(bundle, "kind", json_string(d ? "delta" : "full"));
    if (d != NULL) {
        json_object_set_new(bundle, "delta", d);
    }
}

void delta_describe_all(store_t *s, json_t *bundles)
{
    size_t i;
    json_t *b;

    json_array_foreach(bundles, i, b) {
        delta_describe(s, b);
    }
}

/* u names the delta bundle of d instead of the full one. */
static void serve(store_update_t *u, const store_delivery_t *d)
{
    u->bundle_id = d->bundle_id;
    snprintf(u->sha256, sizeof(u->sha256), "%s", d->sha256);
    u->size = d->size;
    u->signed_size = d->signed_size;
}

void delta_choose(store_t *s, const char *device, store_update_t *u)
{
    store_delivery_t d;

    if (s->ops->delivery_get(s, u->deployment_id, device, &d) != STORE_OK) {
        return; /* the full bundle: the device fetches the pages that differ */
    }
    if (d.delivery[0] == '\0') {
        /* The first offer: a delta for the device's base if there is one, else pages. */
        store_delivery_t x;
        bool delta = s->ops->delta_find(s, u->bundle_id, device, &x) == STORE_OK;
        if (s->ops->delivery_set(s, u->deployment_id, device, delta ? "delta" : "pages",
                                 delta ? x.bundle_id : 0) != STORE_OK ||
            s->ops->delivery_get(s, u->deployment_id, device, &d) != STORE_OK) {
            return;
        }
        if (strcmp(d.delivery, "delta") == 0) {
            KD_INFO("device '%s': deployment %lld: delta bundle %lld (%lld bytes, the full bundle "
                    "is %lld) for the base it reported", device, (long long)u->deployment_id,
                    (long long)d.bundle_id, (long long)d.size, (long long)u->size);
        } else {
            KD_INFO("device '%s': deployment %lld: pages (no delta for the base it reported)",
                    device, (long long)u->deployment_id);
        }
    }
    if (strcmp(d.delivery, "delta") == 0 && d.bundle_id > 0) {
        serve(u, &d);
    }
}

bool delta_serving(store_t *s, const char *device, store_update_t *u, const uint8_t sha[32])
{
    store_delivery_t d;
    char want[65];

    hex(sha, 32, want);
    if (s->ops->delivery_get(s, u->deployment_id, device, &d) != STORE_OK ||
        strcmp(d.delivery, "delta") != 0 || strcmp(d.sha256, want) != 0) {
        return false;
    }
    serve(u, &d);
    return true;
}

/* Codes that say "this delta cannot serve this device" (not "this update is refused"): the base
 * differs, the patch does not decode, or the microvisor predates delta bundles. */
static bool delta_refusal(kerr_t code)
{
    return (code <= KERR_DLT_FORMAT && code >= KERR_DLT_TOOBIG) || code == KERR_BDL_VERSION;
}

int delta_on_status(store_t *s, const char *device, const keel_v1_UpdateStatus *st, int64_t now_ms)
{
    bool final = st->result != keel_v1_UpdateResult_UPDATE_RESULT_INITIAL &&
                 st->state == keel_v1_UpdateState_UPDATE_STATE_IDLE;
    if (!final || !delta_refusal((kerr_t)(int32_t)st->code)) {
        return 0;
    }
    bool changed = false;
    int64_t dep = (int64_t)st->deployment_id;
    if (s->ops->delivery_fallback(s, dep, device, now_ms, st, &changed) != STORE_OK) {
        return -1;
    }
    if (changed) {
        KD_WARN("device '%s': deployment %lld: the delta was refused (code %d: %s); sending pages",
                device, (long long)dep, (int)(int32_t)st->code,
                st->detail[0] ? st->detail : kerr_str((kerr_t)(int32_t)st->code));
        return 1;
    }
    /* After a fallback the device may say its refusal again (a redelivery, a resend before the
     * ack): the row serves pages now and must not take it as the final result of those. */
    store_delivery_t d;
    if (s->ops->delivery_get(s, dep, device, &d) == STORE_OK && d.delta_refused[0] != '\0' &&
        strcmp(d.delivery, "pages") == 0) {
        KD_DEBUG("device '%s': deployment %lld: its delta refusal again; acked", device, (long long)dep);
        return 2;
    }
    return 0;
}
