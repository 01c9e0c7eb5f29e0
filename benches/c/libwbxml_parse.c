/*
 * libwbxml_parse: C side of easync's WBXML decoder benchmark.
 *
 * Usage: libwbxml_parse [--repeat N] FILE
 *
 * Parses FILE with libwbxml's callback ("SAX-like") parser, forcing the
 * ActiveSync language table, and prints a single line on stdout:
 *
 *   bytes=<input size> repeat=<N> best_ns=<fastest parse> elements=<count>
 *   text_bytes=<sum of character data> maxrss_kib=<ru_maxrss>
 *
 * Build: cc -O2 -I/usr/include/libwbxml-1.0 -o libwbxml_parse \
 *            libwbxml_parse.c -lwbxml2
 *
 * Notes on what is being compared:
 *  - libwbxml has no incremental/streaming entry point: wbxml_parser_parse()
 *    wants the complete document in one buffer (and its length is a 32-bit
 *    WB_ULONG).  So the whole file is read into memory first; that buffer is
 *    part of the peak RSS reported.  The read itself is not timed.
 *  - wbxml_parser_parse() copies the input into its own WBXMLBuffer, and
 *    every string/opaque content item is copied (and run through its charset
 *    converter) into a fresh buffer before the characters callback sees it.
 *    Those copies are libwbxml's real cost and are inside the timed region.
 *  - Each timed iteration is create + configure + parse + destroy, so the
 *    parser's internal copy of the input is freed before the next one.
 *
 * Debian's libwbxml2-dev (0.11.x) installs only the wbxml_conv API headers;
 * the parser functions are exported by libwbxml2.so but their declarations
 * (wbxml_parser.h / wbxml_handlers.h) are not shipped.  They are declared
 * below, matching upstream's signatures, unless the real headers were
 * pulled in by <wbxml/wbxml.h>.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <wbxml/wbxml.h>

#ifndef WBXML_HANDLERS_H
/* Only ever handled through pointers here. */
typedef struct WBXMLTag_s WBXMLTag;
typedef struct WBXMLAttribute_s WBXMLAttribute;
typedef struct WBXMLLangEntry_s WBXMLLangEntry;

typedef void (*WBXMLStartDocumentHandler)(void *ctx, WBXMLCharsetMIBEnum charset,
                                          const WBXMLLangEntry *lang);
typedef void (*WBXMLEndDocumentHandler)(void *ctx);
typedef void (*WBXMLStartElementHandler)(void *ctx, WBXMLTag *localName,
                                         WBXMLAttribute **atts, WB_BOOL empty);
typedef void (*WBXMLEndElementHandler)(void *ctx, WBXMLTag *localName, WB_BOOL empty);
typedef void (*WBXMLCharactersHandler)(void *ctx, WB_UTINY *ch, WB_ULONG start,
                                       WB_ULONG length);
typedef void (*WBXMLProcessingInstructionHandler)(void *ctx, const WB_UTINY *target,
                                                  WB_UTINY *data);

typedef struct WBXMLContentHandler_s {
    WBXMLStartDocumentHandler start_document_clb;
    WBXMLEndDocumentHandler end_document_clb;
    WBXMLStartElementHandler start_element_clb;
    WBXMLEndElementHandler end_element_clb;
    WBXMLCharactersHandler characters_clb;
    WBXMLProcessingInstructionHandler pi_clb;
} WBXMLContentHandler;
#endif

#ifndef WBXML_PARSER_H
typedef struct WBXMLParser_s WBXMLParser;

WBXMLParser *wbxml_parser_create(void);
void wbxml_parser_destroy(WBXMLParser *parser);
WBXMLError wbxml_parser_parse(WBXMLParser *parser, WB_UTINY *wbxml, WB_ULONG wbxml_len);
void wbxml_parser_set_user_data(WBXMLParser *parser, void *user_data);
void wbxml_parser_set_content_handler(WBXMLParser *parser,
                                      WBXMLContentHandler *content_handler);
WB_BOOL wbxml_parser_set_language(WBXMLParser *parser, WBXMLLanguage lang);
#endif

/* Per-parse tallies, reached from the callbacks through user_data. */
struct tally {
    uint64_t documents;   /* start_document calls */
    uint64_t ended;       /* end_document calls */
    uint64_t elements;    /* start_element calls */
    uint64_t closed;      /* end_element calls */
    uint64_t empty;       /* elements flagged empty */
    uint64_t text_chunks; /* characters calls */
    uint64_t text_bytes;  /* sum of characters lengths */
    uint64_t pis;         /* processing instructions */
    uint64_t checksum;    /* touches the text so it is really read */
    uint32_t depth, max_depth;
};

static void on_start_document(void *ctx, WBXMLCharsetMIBEnum charset,
                              const WBXMLLangEntry *lang)
{
    struct tally *t = ctx;
    (void)lang;
    t->documents++;
    t->checksum += (uint64_t)charset;
}

static void on_end_document(void *ctx)
{
    ((struct tally *)ctx)->ended++;
}

static void on_start_element(void *ctx, WBXMLTag *name, WBXMLAttribute **atts, WB_BOOL empty)
{
    struct tally *t = ctx;
    (void)name;
    t->elements++;
    if (atts != NULL)
        t->checksum++;
    if (empty) {
        t->empty++;
    } else if (++t->depth > t->max_depth) {
        t->max_depth = t->depth;
    }
}

static void on_end_element(void *ctx, WBXMLTag *name, WB_BOOL empty)
{
    struct tally *t = ctx;
    (void)name;
    t->closed++;
    if (!empty)
        t->depth--;
}

static void on_characters(void *ctx, WB_UTINY *ch, WB_ULONG start, WB_ULONG length)
{
    struct tally *t = ctx;
    t->text_chunks++;
    t->text_bytes += length;
    if (length > 0) {
        /* Read first and last byte: cheap, but the data must exist. */
        t->checksum += ch[start] + ch[start + length - 1];
    }
}

static void on_pi(void *ctx, const WB_UTINY *target, WB_UTINY *data)
{
    struct tally *t = ctx;
    (void)target;
    (void)data;
    t->pis++;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--repeat N] FILE\n", argv0);
    exit(2);
}

/* Reads the whole file; libwbxml cannot parse from a stream. */
static unsigned char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: not a regular file\n", path);
        fclose(f);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    unsigned char *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        fprintf(stderr, "out of memory reading %s (%zu bytes)\n", path, len);
        fclose(f);
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        size_t n = fread(buf + got, 1, len - got, f);
        if (n == 0) {
            fprintf(stderr, "short read on %s\n", path);
            free(buf);
            fclose(f);
            return NULL;
        }
        got += n;
    }
    fclose(f);
    *len_out = len;
    return buf;
}

int main(int argc, char **argv)
{
    unsigned long repeat = 1;
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeat") == 0) {
            if (++i >= argc)
                usage(argv[0]);
            char *end = NULL;
            errno = 0;
            repeat = strtoul(argv[i], &end, 10);
            if (errno != 0 || end == argv[i] || *end != '\0' || repeat == 0)
                usage(argv[0]);
        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];
        } else {
            usage(argv[0]);
        }
    }
    if (path == NULL)
        usage(argv[0]);

    size_t len = 0;
    unsigned char *buf = read_file(path, &len);
    if (buf == NULL)
        return 1;
    if (len == 0 || len > UINT32_MAX) {
        /* wbxml_parser_parse() takes a 32-bit length and rejects empty input. */
        fprintf(stderr, "%s: size %zu not parseable by libwbxml\n", path, len);
        free(buf);
        return 1;
    }

    WBXMLContentHandler handler = {
        on_start_document, on_end_document, on_start_element,
        on_end_element,    on_characters,   on_pi,
    };

    uint64_t best_ns = UINT64_MAX;
    struct tally first = {0};

    for (unsigned long r = 0; r < repeat; r++) {
        struct tally t = {0};

        uint64_t t0 = now_ns();
        WBXMLParser *parser = wbxml_parser_create();
        if (parser == NULL) {
            fprintf(stderr, "wbxml_parser_create failed\n");
            free(buf);
            return 1;
        }
        wbxml_parser_set_user_data(parser, &t);
        wbxml_parser_set_content_handler(parser, &handler);
        wbxml_parser_set_language(parser, WBXML_LANG_ACTIVESYNC);
        WBXMLError ret = wbxml_parser_parse(parser, (WB_UTINY *)buf, (WB_ULONG)len);
        wbxml_parser_destroy(parser);
        uint64_t dt = now_ns() - t0;

        if (ret != WBXML_OK) {
            fprintf(stderr, "%s: parse failed: %s (%d)\n", path,
                    (const char *)wbxml_errors_string(ret), (int)ret);
            free(buf);
            return 1;
        }
        if (t.documents != 1 || t.ended != 1 || t.closed != t.elements) {
            fprintf(stderr, "%s: inconsistent callbacks (documents=%llu ended=%llu "
                            "elements=%llu closed=%llu)\n",
                    path, (unsigned long long)t.documents, (unsigned long long)t.ended,
                    (unsigned long long)t.elements, (unsigned long long)t.closed);
            free(buf);
            return 1;
        }
        if (r == 0) {
            first = t;
        } else if (t.elements != first.elements || t.text_bytes != first.text_bytes ||
                   t.checksum != first.checksum) {
            fprintf(stderr, "%s: results differ between repetitions\n", path);
            free(buf);
            return 1;
        }
        if (dt < best_ns)
            best_ns = dt;
    }

    struct rusage ru;
    long maxrss_kib = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        maxrss_kib = ru.ru_maxrss; /* KiB on Linux */

    printf("bytes=%zu repeat=%lu best_ns=%llu elements=%llu text_bytes=%llu maxrss_kib=%ld\n",
           len, repeat, (unsigned long long)best_ns, (unsigned long long)first.elements,
           (unsigned long long)first.text_bytes, maxrss_kib);

    free(buf);
    return 0;
}
