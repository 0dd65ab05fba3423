/*
 * Figures for bench/results.md (issue 6): internal-flash page writes per changed page (write
 * amplification) and QSPI sector erases per update, on AN505's real geometry (app slot of 129
 * pages of 8 KiB, 4 KiB QSPI sectors), for the same image again, a one-page change in a ~200 KiB
 * image and a whole new image. Prints a Markdown table (scripts/bench-ota.sh) and asserts the
 * figures the engine promises: nothing written for the same image, one page for one page.
 *
 * The update runs as on a device that boots once after staging (the apply happens in a later
 * boot than the download) and once into the trial app: each of those boots that writes a journal
 * record starts a fresh journal page (upd_journal.h), which is counted.
 */
#define FX_PAGES 129u

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_upd_fixture.h"

#define IMG_LEN (200u * 1024u)

static fx_dev_t g_dev;
static uint8_t g_old[FX_REGION], g_new[FX_REGION];
static uint8_t g_bundle[FX_BUNDLE_MAX];

typedef struct figures {
    uint32_t changed;
    uint32_t staged_bytes;
    uint32_t page_erases, page_programs;
    uint32_t journal_records, journal_erases;
    uint32_t qspi_erases;
    uint32_t qspi_planned;
} figures_t;

static void run(const char *name, figures_t *fg)
{
    memset(fg, 0, sizeof(*fg));
    fx_bundle_opts_t o = fx_opts(0x00020000u, 2, IMG_LEN);
    uint32_t n = fx_bundle(g_new, &o, g_bundle);
    assert_true(n > 0u);
    assert_int_equal(fx_dev_init(&g_dev, g_old), KERR_OK);
    upd_plan_t plan;
    assert_int_equal(upd_inspect(&g_dev.upd, g_bundle, n, &plan), KERR_OK);
    uint32_t j_w = 0, j_e = 0;
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    for (uint32_t i = 0; i < FX_PAGES; i++) {
        if (upd_block_needed(&g_dev.upd, i) == 1) {
            assert_int_equal(upd_stage_block(&g_dev.upd, i, g_new + i * FX_PAGE, FX_PAGE), KERR_OK);
            fg->staged_bytes += FX_PAGE;
        }
    }
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    j_w += g_dev.upd.j.writes;
    j_e += g_dev.upd.j.erases;
    assert_int_equal(fx_reboot(&g_dev), KERR_OK); /* apply in a later boot */
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
    upd_counters_t ctr = g_dev.upd.ctr;
    j_w += g_dev.upd.j.writes;
    j_e += g_dev.upd.j.erases;
    assert_int_equal(fx_reboot(&g_dev), KERR_OK); /* the trial app's boot */
    assert_int_equal(upd_confirm(&g_dev.upd), KERR_OK);
    j_w += g_dev.upd.j.writes;
    j_e += g_dev.upd.j.erases;
    assert_memory_equal(g_dev.imem, g_new, FX_REGION);
    fg->changed = plan.changed;
    fg->page_erases = ctr.page_erases;
    fg->page_programs = ctr.page_programs;
    fg->journal_records = j_w;
    fg->journal_erases = j_e;
    fg->qspi_erases = g_dev.qfl.stats.erases;
    fg->qspi_planned = plan.qspi_erases;
    char app_per[16] = "-", all_per[16] = "-";
    if (fg->changed != 0u) {
        snprintf(app_per, sizeof(app_per), "%.2f", (double)fg->page_erases / fg->changed);
        snprintf(all_per, sizeof(all_per), "%.2f",
                 (double)(fg->page_erases + fg->journal_erases) / fg->changed);
    }
    printf("| %s | %u | %u | %u | %s | %u / %u | %s | %u |\n", name, fg->changed,
           fg->staged_bytes / 1024u, fg->page_erases, app_per, fg->journal_records,
           fg->journal_erases, all_per, fg->qspi_erases);
}

static void test_bench_figures(void **state)
{
    (void)state;
    figures_t same, one, whole;
    printf("\nApp region %u KiB (%u pages of 8 KiB), image %u KiB; QSPI sectors 4 KiB.\n\n",
           FX_REGION / 1024u, FX_PAGES, IMG_LEN / 1024u);
    printf("| update | changed pages | staged KiB | app page writes (erase + program) | app page "
           "writes per changed page | journal records / journal page erases | all internal page "
           "erases per changed page | QSPI sector erases |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    fx_image(g_old, IMG_LEN, 21);
    memcpy(g_new, g_old, FX_REGION);
    run("same image again", &same);
    g_new[100u * 1024u + 5u] ^= 0x01u; /* one page of ~200 KiB */
    run("one-page change", &one);
    fx_image(g_new, IMG_LEN, 22);
    run("whole new image", &whole);
    printf("\nApp page writes: every written page is erased once and programmed once (8 KiB), "
           "nothing else of the app region is touched. Journal records are 128 B programs; each "
           "boot that writes a record erases one journal page (3 boots here: download, apply, "
           "trial). QSPI erases = 5 bookkeeping sectors + 2 per staged block + 2 per saved page.\n");
    assert_int_equal(same.changed + same.page_erases + same.page_programs, 0u);
    assert_int_equal(one.changed, 1u);
    assert_int_equal(one.page_erases, 1u);
    assert_int_equal(one.page_programs, 1u);
    assert_int_equal(whole.page_programs, whole.changed);
    /* inspect's plan is what the update really erased in QSPI */
    assert_int_equal(same.qspi_erases, same.qspi_planned);
    assert_int_equal(one.qspi_erases, one.qspi_planned);
    assert_int_equal(whole.qspi_erases, whole.qspi_planned);
    upd_close(&g_dev.upd);
    g_dev.open = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bench_figures)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
