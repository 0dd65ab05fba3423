/*
 * Host-file flash backend: create/open rules and persistence through kflash, in a scratch
 * directory given as argv[1] (the build tree).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keel/flash.h"
#include "keel/flash_file.h"

#define SIZE 16384u
#define PAGE 4096u
#define UNIT 16u

static const char *g_dir = ".";
static char g_path[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(g_path, sizeof(g_path), "%s/unit_flash_file_%ld.bin", g_dir, (long)getpid());
    unlink(g_path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_path);
    return 0;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_create_erased_and_persist(void **state)
{
    (void)state;
    kflash_file_t ff;
    assert_int_equal(kflash_file_open(&ff, g_path, SIZE, false), KERR_IO); /* missing */
    assert_int_equal(kflash_file_open(&ff, g_path, SIZE, true), KERR_OK);
    assert_int_equal(file_size(g_path), (long)SIZE);

    kflash_t f;
    kflash_geometry_t geo = {SIZE, PAGE, UNIT, true};
    uint8_t used[KFLASH_BITMAP_BYTES(SIZE, UNIT)];
    assert_int_equal(kflash_init(&f, &kflash_file_backend, &ff, &geo, used, sizeof(used)),
                     KERR_OK);
    uint8_t buf[SIZE];
    assert_int_equal(kflash_read(&f, 0, buf, SIZE), KERR_OK);
    for (uint32_t i = 0; i < SIZE; i++) {
        assert_int_equal(buf[i], 0xFF);
    }
    uint8_t data[3 * UNIT];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 5u);
    }
    assert_int_equal(kflash_program(&f, PAGE + UNIT, data, sizeof(data)), KERR_OK);
    assert_int_equal(kflash_file_close(&ff), KERR_OK);
    assert_int_equal(kflash_file_close(&ff), KERR_OK); /* idempotent */

    /* Reopen: content persisted, bitmap rebuilt from it. */
    assert_int_equal(kflash_file_open(&ff, g_path, SIZE, false), KERR_OK);
    assert_int_equal(kflash_init(&f, &kflash_file_backend, &ff, &geo, used, sizeof(used)),
                     KERR_OK);
    uint8_t got[sizeof(data)];
    assert_int_equal(kflash_read(&f, PAGE + UNIT, got, sizeof(got)), KERR_OK);
    assert_memory_equal(got, data, sizeof(data));
    assert_int_equal(kflash_program(&f, PAGE + UNIT, data, UNIT), KERR_FLASH_TWICE);
    assert_int_equal(kflash_erase(&f, PAGE), KERR_OK);
    assert_int_equal(kflash_read(&f, PAGE + UNIT, got, sizeof(got)), KERR_OK);
    assert_int_equal(got[0], 0xFF);
    assert_int_equal(kflash_file_close(&ff), KERR_OK);
    assert_int_equal(file_size(g_path), (long)SIZE);
}

static void test_open_errors(void **state)
{
    (void)state;
    kflash_file_t ff;
    FILE *fp = fopen(g_path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite("abc", 1, 3, fp), 3u);
    fclose(fp);
    /* An existing file of another size is refused, not resized. */
    assert_int_equal(kflash_file_open(&ff, g_path, SIZE, true), KERR_FORMAT);
    assert_null(ff.fp);
    assert_int_equal(file_size(g_path), 3L);
    assert_int_equal(kflash_file_open(&ff, g_path, 0, true), KERR_INVAL);
    assert_int_equal(kflash_file_open(&ff, "/nonexistent-dir/x/flash.bin", SIZE, true), KERR_IO);
    assert_int_equal(kflash_file_open(&ff, NULL, SIZE, true), KERR_INVAL);
}

static void test_backend_range(void **state)
{
    (void)state;
    kflash_file_t ff;
    uint8_t b[8];
    assert_int_equal(kflash_file_open(&ff, g_path, SIZE, true), KERR_OK);
    assert_int_equal(kflash_file_backend.read(&ff, SIZE - 4, b, 8), KERR_IO);
    assert_int_equal(kflash_file_backend.write(&ff, SIZE, b, 1), KERR_IO);
    assert_int_equal(kflash_file_backend.read(&ff, SIZE - 8, b, 8), KERR_OK);
    assert_int_equal(kflash_file_close(&ff), KERR_OK);
    assert_int_equal(kflash_file_backend.read(&ff, 0, b, 1), KERR_IO); /* closed */
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        g_dir = argv[1];
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_erased_and_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_range, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
