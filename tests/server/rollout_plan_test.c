/*
 * Rollouts without I/O (server/keeld/rollout_plan.c): the request's checks, the deterministic
 * split of devices into phases, and the engine's decision from a phase's counts (gates, guards
 * after a minimum of results, errors acknowledged by a resume, inconclusive verdicts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout_plan.h"

static int failures, checks;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

static int parse(const char *text, rollout_request_t *r, char *why)
{
    json_t *j = json_loads(text, 0, NULL);
    int rc = rollout_plan_parse(j, r, why, 256);
    json_decref(j); /* r points into j: only rc and why are used after this */
    return rc;
}

static void test_parse(void)
{
    rollout_request_t r;
    char why[256];
    json_t *j = json_loads("{\"bundle\": 3, \"all\": true, \"error_pct\": 5, \"phases\": [{\"count\": 2},"
                           " {\"percent\": 10, \"approve\": true, \"success_pct\": 50}, {\"tag\": \"ring=b\"}]}",
                           0, NULL);
    CHECK(rollout_plan_parse(j, &r, why, sizeof why) == 0);
    CHECK(strcmp(r.bundle, "3") == 0 && strcmp(r.plan.target_kind, "all") == 0);
    CHECK(r.plan.nphases == 3 && strcmp(r.plan.phases[0].kind, "count") == 0);
    CHECK(r.plan.phases[0].success_pct == ROLLOUT_DEF_SUCCESS_PCT && r.plan.phases[0].error_pct == 5);
    CHECK(r.plan.phases[1].approve && r.plan.phases[1].success_pct == 50 && r.plan.phases[1].error_pct == 5);
    CHECK(strcmp(r.plan.phases[2].kind, "tag") == 0 && strcmp(r.plan.phases[2].value, "ring=b") == 0);
    CHECK(r.plan.device_timeout_s == ROLLOUT_DEF_TIMEOUT_S && strcmp(r.plan.on_error, "pause") == 0);
    json_decref(j);
    static const char *const bad[] = {
        "{\"all\": true, \"phases\": [{\"count\": 1}]}",
        "{\"bundle\": 1, \"phases\": [{\"count\": 1}]}",
        "{\"bundle\": 1, \"all\": true, \"device\": \"d\", \"phases\": [{\"count\": 1}]}",
        "{\"bundle\": 1, \"all\": true, \"phases\": []}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"count\": 0}]}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"percent\": 101}]}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"count\": 1, \"tag\": \"x\"}]}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"tag\": \"=x\"}]}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"count\": 1, \"approve\": 1}]}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"count\": 1}], \"on_error\": \"panic\"}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"count\": 1}], \"device_timeout_s\": 0}",
        "{\"bundle\": 1, \"all\": true, \"phases\": [{\"count\": 1}], \"min_results\": 0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        CHECK(parse(bad[i], &r, why) == -1 && why[0] != '\0');
    }
}

static void test_assign(void)
{
    enum { N = 1000 };
    static char names[N][16];
    const char *ids[N];
    uint8_t a[N], b[N], c[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "dev-%04d", i);
        ids[i] = names[i];
    }
    store_rollout_new_t p = {.seed = "s1", .nphases = 3};
    strcpy(p.phases[0].kind, "count");
    strcpy(p.phases[0].value, "10");
    strcpy(p.phases[1].kind, "percent");
    strcpy(p.phases[1].value, "25");
    strcpy(p.phases[2].kind, "percent");
    strcpy(p.phases[2].value, "1");
    json_t *none[STORE_ROLLOUT_PHASES] = {0};
    CHECK(rollout_plan_assign(&p, N, ids, none, a) == 0);
    /* 10, 250, and the last phase takes the 1 % and everything left. */
    CHECK(p.phases[0].devices == 10 && p.phases[1].devices == 250 && p.phases[2].devices == 740);
    CHECK(rollout_plan_assign(&p, N, ids, none, b) == 0 && memcmp(a, b, N) == 0); /* deterministic */
    p.seed = "s2";
    CHECK(rollout_plan_assign(&p, N, ids, none, c) == 0 && memcmp(a, c, N) != 0); /* seed matters */
    /* Not the first ten ids: drawn by hash. */
    int first = 0;
    for (int i = 0; i < 10; i++) {
        first += a[i] == 0;
    }
    CHECK(first < 10);
    /* A tag phase takes its tagged devices first; later phases only what is left. */
    json_t *tagged[STORE_ROLLOUT_PHASES] = {0};
    tagged[0] = json_pack("[sss]", "dev-0003", "dev-0500", "dev-0999");
    strcpy(p.phases[0].kind, "tag");
    strcpy(p.phases[0].value, "ring=canary");
    CHECK(rollout_plan_assign(&p, N, ids, tagged, a) == 0);
    CHECK(p.phases[0].devices == 3 && a[3] == 0 && a[500] == 0 && a[999] == 0);
    CHECK(p.phases[1].devices == 250 && p.phases[2].devices == 747);
    json_decref(tagged[0]);
}

static rollout_phase_view_t view(bool started, int64_t rows, int64_t ok, int64_t failed, int64_t late,
                                 int64_t inconclusive)
{
    rollout_phase_view_t v = {.started = started, .rows = rows, .succeeded = ok, .failed = failed,
                              .timed_out = late, .inconclusive = inconclusive, .success_pct = 100,
                              .error_pct = 20, .min_results = 3};
    v.waiting = rows - ok - failed - inconclusive;
    strcpy(v.errors, "x");
    return v;
}

static void test_decide(void)
{
    char why[400];
    rollout_phase_view_t ph[3] = {view(false, 0, 0, 0, 0, 0), view(false, 0, 0, 0, 0, 0),
                                  view(false, 0, 0, 0, 0, 0)};

    CHECK(rollout_decide("running", -1, 3, ph, why, sizeof why) == ROLLOUT_START_NEXT);
    ph[0].approve = true;
    CHECK(rollout_decide("running", -1, 3, ph, why, sizeof why) == ROLLOUT_AWAIT);
    ph[0] = view(true, 10, 5, 0, 0, 0);
    CHECK(rollout_decide("running", 0, 3, ph, why, sizeof why) == ROLLOUT_NONE); /* gate not met */
    /* Two errors in two results: under the minimum of three, no verdict yet. */
    ph[0] = view(true, 10, 0, 2, 0, 0);
    CHECK(rollout_decide("running", 0, 3, ph, why, sizeof why) == ROLLOUT_NONE);
    /* Timeouts are errors: 1 failed + 1 timed out of 3 results > 20 %. */
    ph[0] = view(true, 10, 1, 1, 1, 0);
    CHECK(rollout_decide("running", 0, 3, ph, why, sizeof why) == ROLLOUT_PAUSE);
    CHECK(strstr(why, "phase 1: 2 of 3 results are errors (66% > 20%)") != NULL);
    /* Acknowledged by a resume: only new results count. */
    ph[0].ack_results = 3;
    ph[0].ack_errors = 2;
    CHECK(rollout_decide("running", 0, 3, ph, why, sizeof why) == ROLLOUT_NONE);
    /* Inconclusive verdicts are neither errors nor needed for the gate. */
    ph[0] = view(true, 10, 8, 0, 0, 2);
    CHECK(rollout_decide("running", 0, 3, ph, why, sizeof why) == ROLLOUT_START_NEXT);
    CHECK(strstr(why, "phase 1: 8 of 8 succeeded") != NULL && strstr(why, "phase 2 started") != NULL);
    ph[0] = view(true, 10, 0, 0, 0, 10);
    CHECK(rollout_decide("running", 0, 3, ph, why, sizeof why) == ROLLOUT_START_NEXT);
    /* An earlier phase's late errors still pause, also while awaiting approval. */
    ph[0] = view(true, 10, 6, 4, 0, 0);
    ph[1] = view(true, 10, 10, 0, 0, 0);
    CHECK(rollout_decide("awaiting_approval", 1, 3, ph, why, sizeof why) == ROLLOUT_PAUSE);
    ph[0] = view(true, 10, 10, 0, 0, 0);
    CHECK(rollout_decide("awaiting_approval", 1, 3, ph, why, sizeof why) == ROLLOUT_NONE);
    ph[2].approve = true;
    CHECK(rollout_decide("running", 1, 3, ph, why, sizeof why) == ROLLOUT_AWAIT);
    ph[2] = view(true, 5, 5, 0, 0, 0);
    CHECK(rollout_decide("running", 2, 3, ph, why, sizeof why) == ROLLOUT_COMPLETE);
    CHECK(rollout_decide("paused", 2, 3, ph, why, sizeof why) == ROLLOUT_NONE);
    CHECK(rollout_decide("completed", 2, 3, ph, why, sizeof why) == ROLLOUT_NONE);
    /* error_pct 0: any error pauses. */
    ph[2] = view(true, 5, 3, 1, 0, 0);
    ph[2].error_pct = 0;
    ph[2].min_results = 1;
    CHECK(rollout_decide("running", 2, 3, ph, why, sizeof why) == ROLLOUT_PAUSE);
}

int main(void)
{
    test_parse();
    test_assign();
    test_decide();
    printf("rollout_plan: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
