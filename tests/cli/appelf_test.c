/*
 * appelf (the keel CLI's app ELF reader) on ELFs built in memory: a golden two-segment app
 * with a gap, each rejection rule, and seeded random mutations that must never crash (ASan)
 * and never yield an image outside the rules.
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appelf.h"

static const appelf_target_t target = {
    .code_base = 0x00200000u, .code_size = 0x00100000u,
    .ram_base = 0x28200000u, .ram_size = 0x00080000u,
};

static int failures;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * The golden app: ELF header, 3 program headers, then
 *   segment 0 (.text) 16 bytes at 0x00200000: SP 0x28280000, reset 0x00200009, 8 bytes code
 *   segment 1 (.data) 8 bytes loaded at 0x00200020 (a 16-byte gap), run at 0x28200000
 *   segment 2 (.bss)  PT_LOAD with no file bytes (ignored)
 */
#define G_PHOFF 52u
#define G_TEXT_OFF (G_PHOFF + 3u * 32u)
#define G_DATA_OFF (G_TEXT_OFF + 16u)
#define G_LEN (G_DATA_OFF + 8u)

static void phdr(uint8_t *p, uint32_t type, uint32_t off, uint32_t vaddr, uint32_t paddr,
                 uint32_t filesz, uint32_t memsz)
{
    put32(p + 0, type);
    put32(p + 4, off);
    put32(p + 8, vaddr);
    put32(p + 12, paddr);
    put32(p + 16, filesz);
    put32(p + 20, memsz);
    put32(p + 24, 5);
    put32(p + 28, 4);
}

static void golden(uint8_t elf[G_LEN])
{
    memset(elf, 0, G_LEN);
    memcpy(elf, ELFMAG, SELFMAG);
    elf[EI_CLASS] = ELFCLASS32;
    elf[EI_DATA] = ELFDATA2LSB;
    elf[EI_VERSION] = EV_CURRENT;
    put16(elf + 16, ET_EXEC);
    put16(elf + 18, EM_ARM);
    put32(elf + 20, EV_CURRENT);
    put32(elf + 24, 0x00200009u);
    put32(elf + 28, G_PHOFF);
    put16(elf + 40, 52);
    put16(elf + 42, 32);
    put16(elf + 44, 3);
    phdr(elf + G_PHOFF, PT_LOAD, G_TEXT_OFF, 0x00200000u, 0x00200000u, 16, 16);
    phdr(elf + G_PHOFF + 32, PT_LOAD, G_DATA_OFF, 0x28200000u, 0x00200020u, 8, 8);
    phdr(elf + G_PHOFF + 64, PT_LOAD, 0, 0x28200008u, 0x28200008u, 0, 64);
    put32(elf + G_TEXT_OFF, 0x28280000u);
    put32(elf + G_TEXT_OFF + 4, 0x00200009u);
    memset(elf + G_TEXT_OFF + 8, 0xA5, 8);
    memset(elf + G_DATA_OFF, 0x3C, 8);
}

static void test_golden(void)
{
    uint8_t elf[G_LEN];
    golden(elf);
    appelf_image_t img;
    char why[256] = "";
    kerr_t err = appelf_from_memory(elf, sizeof elf, &target, &img, why, sizeof why);
    CHECK(err == KERR_OK, "golden rejected: %s", why);
    if (err != KERR_OK)
        return;
    CHECK(img.size == 0x28, "size %u", img.size);
    CHECK(img.load_addr == 0x00200000u, "load_addr 0x%08x", img.load_addr);
    CHECK(memcmp(img.bytes, elf + G_TEXT_OFF, 16) == 0, "text bytes");
    for (unsigned i = 16; i < 32; i++)
        CHECK(img.bytes[i] == 0xFF, "gap byte %u is 0x%02x", i, img.bytes[i]);
    CHECK(memcmp(img.bytes + 32, elf + G_DATA_OFF, 8) == 0, "data bytes at the LMA");
    appelf_free(&img);
}

/* Apply one edit to the golden ELF and expect a rejection that mentions `want`. */
static void expect_reject(const char *name, size_t len, void (*edit)(uint8_t *), const char *want)
{
    uint8_t elf[G_LEN];
    golden(elf);
    if (edit)
        edit(elf);
    appelf_image_t img;
    char why[256] = "";
    kerr_t err = appelf_from_memory(elf, len, &target, &img, why, sizeof why);
    CHECK(err == KERR_IMG_ELF, "%s: accepted (err %d)", name, (int)err);
    CHECK(strstr(why, want) != NULL, "%s: message '%s' lacks '%s'", name, why, want);
    if (err == KERR_OK)
        appelf_free(&img);
}

static void e_class64(uint8_t *e) { e[EI_CLASS] = ELFCLASS64; }
static void e_big(uint8_t *e) { e[EI_DATA] = ELFDATA2MSB; }
static void e_x86(uint8_t *e) { put16(e + 18, EM_386); }
static void e_rel(uint8_t *e) { put16(e + 16, ET_REL); }
static void e_nophdr(uint8_t *e) { put16(e + 44, 0); }
static void e_phentsize(uint8_t *e) { put16(e + 42, 40); }
static void e_phoff_far(uint8_t *e) { put32(e + 28, 0xFFFFFFF0u); }
static void e_seg_far(uint8_t *e) { put32(e + G_PHOFF + 4, 0xFFFFFFF8u); }
static void e_outside(uint8_t *e) { put32(e + G_PHOFF + 32 + 12, 0x002FFFFCu); }
static void e_wrap(uint8_t *e) { put32(e + G_PHOFF + 32 + 12, 0xFFFFFFFCu); }
static void e_late(uint8_t *e) { put32(e + G_PHOFF + 12, 0x00200004u); }
static void e_overlap(uint8_t *e) { put32(e + G_PHOFF + 32 + 12, 0x00200008u); }
static void e_sp(uint8_t *e) { put32(e + G_TEXT_OFF, 0x38100000u); }
static void e_arm_reset(uint8_t *e) { put32(e + G_TEXT_OFF + 4, 0x00200008u); }
static void e_far_reset(uint8_t *e) { put32(e + G_TEXT_OFF + 4, 0x00280001u); }
static void e_nocontent(uint8_t *e)
{
    put32(e + G_PHOFF + 16, 0);
    put32(e + G_PHOFF + 32 + 16, 0);
}

/* One edit of the golden ELF per row, and what the rejection must say. */
static const struct rejection {
    const char *name;
    size_t len;
    void (*edit)(uint8_t *);
    const char *want;
} rejections[] = {
    {"empty", 0, NULL, "not an ELF file"},
    {"magic only", 4, NULL, "truncated ELF header"},
    {"class", G_LEN, e_class64, "not a 32-bit ELF"},
    {"endian", G_LEN, e_big, "not a little-endian ELF"},
    {"machine", G_LEN, e_x86, "ELF machine is 3, not ARM"},
    {"type", G_LEN, e_rel, "not an executable ELF"},
    {"no phdrs", G_LEN, e_nophdr, "no program headers"},
    {"phentsize", G_LEN, e_phentsize, "program header size 40"},
    {"phoff", G_LEN, e_phoff_far, "program header table"},
    {"phdrs cut", G_PHOFF + 40, NULL, "program header table"},
    {"segment cut", G_LEN - 1, NULL, "truncated: segment 1"},
    {"segment offset", G_LEN, e_seg_far, "truncated: segment 0"},
    {"outside", G_LEN, e_outside, "outside the app code region"},
    {"wrap", G_LEN, e_wrap, "outside the app code region"},
    {"late", G_LEN, e_late, "not at the app code region base"},
    {"overlap", G_LEN, e_overlap, "segments overlap"},
    {"sp", G_LEN, e_sp, "initial SP 0x38100000"},
    {"reset not thumb", G_LEN, e_arm_reset, "reset vector 0x00200008"},
    {"reset outside", G_LEN, e_far_reset, "reset vector 0x00280001"},
    {"no content", G_LEN, e_nocontent, "no loadable segment with content"},
};

static void test_rejections(void)
{
    for (size_t i = 0; i < sizeof rejections / sizeof rejections[0]; i++)
        expect_reject(rejections[i].name, rejections[i].len, rejections[i].edit,
                      rejections[i].want);
}

static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Random byte edits and truncations: never a crash, and anything accepted obeys the rules. */
static void test_mutations(void)
{
    uint32_t seed = 0x4b45454cu;
    unsigned accepted = 0;
    for (unsigned iter = 0; iter < 50000; iter++) {
        uint8_t elf[G_LEN];
        golden(elf);
        unsigned edits = 1 + xorshift(&seed) % 4;
        for (unsigned k = 0; k < edits; k++)
            elf[xorshift(&seed) % G_LEN] = (uint8_t)xorshift(&seed);
        size_t len = (xorshift(&seed) % 4 == 0) ? xorshift(&seed) % (G_LEN + 1) : G_LEN;
        /* A heap copy of exactly len bytes, so ASan sees any read past the end. */
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, elf, len);
        appelf_image_t img;
        char why[256] = "";
        kerr_t err = appelf_from_memory(copy, len, &target, &img, why, sizeof why);
        free(copy);
        if (err != KERR_OK) {
            CHECK(err == KERR_IMG_ELF && why[0] != '\0', "iter %u: err %d, why '%s'", iter,
                  (int)err, why);
            continue;
        }
        accepted++;
        uint32_t sp = img.bytes[0] | img.bytes[1] << 8 | img.bytes[2] << 16 |
                      (uint32_t)img.bytes[3] << 24;
        CHECK(img.size >= 8 && img.size <= target.code_size, "iter %u: size %u", iter, img.size);
        CHECK(sp > target.ram_base && sp <= target.ram_base + target.ram_size,
              "iter %u: sp 0x%08x", iter, sp);
        appelf_free(&img);
    }
    /* The mutations must also leave some inputs valid, or the loop tests only rejections. */
    CHECK(accepted > 0, "no mutated ELF was accepted");
    printf("mutations: %u accepted of 50000\n", accepted);
}

int main(void)
{
    test_golden();
    test_rejections();
    test_mutations();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("appelf: all checks passed\n");
    return 0;
}
