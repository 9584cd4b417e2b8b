/* tests/unit/oss/test_xml.c - the streaming XML parser: listings (v1, v2, OSS and S3 shapes,
 * encoding-type=url), errors, bucket stats, chunked feeding, and every limit. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oss/oss_xml_i.h"
#include "util/buf.h"

/* Feeds DOC in chunks of CHUNK bytes (0: whole). Returns the final feed's result. */
static int feed_chunks(struct oss_xml *x, const char *doc, size_t len, size_t chunk)
{
    if (chunk == 0)
        return oss_xml_feed(x, doc, len, true);
    size_t off = 0;
    while (len - off > chunk) {
        int rc = oss_xml_feed(x, doc + off, chunk, false);
        if (rc)
            return rc;
        off += chunk;
    }
    return oss_xml_feed(x, doc + off, len - off, true);
}

static struct oss_xml *parse_ok(enum oss_xml_kind kind, const char *doc, size_t chunk)
{
    struct oss_xml *x = oss_xml_new(kind);
    assert_non_null(x);
    int rc = feed_chunks(x, doc, strlen(doc), chunk);
    if (rc != 0)
        fail_msg("parse failed: %s", oss_xml_error(x));
    assert_string_equal(oss_xml_error(x), "");
    return x;
}

/* Expects -EBADMSG and, if WHAT is set, an error string containing it. */
static void parse_bad_n(enum oss_xml_kind kind, const char *doc, size_t len, const char *what)
{
    struct oss_xml *x = oss_xml_new(kind);
    assert_non_null(x);
    assert_int_equal(feed_chunks(x, doc, len, 0), -EBADMSG);
    const char *e = oss_xml_error(x);
    assert_true(strncmp(e, "xml: ", 5) == 0);
    if (what && strstr(e, what) == NULL)
        fail_msg("error '%s' does not mention '%s'", e, what);
    /* Results of a failed parse are empty, and it stays failed. */
    assert_int_equal(oss_xml_list_count(x), 0);
    assert_string_equal(oss_xml_list_next_token(x), "");
    assert_int_equal(oss_xml_feed(x, "<a/>", 4, true), -EBADMSG);
    oss_xml_free(x);
}

static void parse_bad(enum oss_xml_kind kind, const char *doc, const char *what)
{
    parse_bad_n(kind, doc, strlen(doc), what);
}

static const char v2_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult>\n"
    "  <Name>examplebucket</Name>\n"
    "  <Prefix></Prefix>\n"
    "  <MaxKeys>1000</MaxKeys>\n"
    "  <Delimiter>%2F</Delimiter>\n"
    "  <IsTruncated>true</IsTruncated>\n"
    "  <Contents>\n"
    "    <Key>a%20b</Key>\n"
    "    <LastModified>2023-12-29T07:45:02.000Z</LastModified>\n"
    "    <ETag>&quot;5B3C1A2E053D763E1B002CC607C5A0FE&quot;</ETag>\n"
    "    <Type>Normal</Type>\n"
    "    <Size>344606</Size>\n"
    "    <StorageClass>Standard</StorageClass>\n"
    "    <Owner><ID>0022012****</ID><DisplayName>user-example</DisplayName></Owner>\n"
    "  </Contents>\n"
    "  <Contents>\n"
    "    <Key>%2B</Key>\n"
    "    <LastModified>2012-02-24T08:42:32.000Z</LastModified>\n"
    "    <ETag>\"x\"</ETag>\n"
    "    <Size>18446744073709551615</Size>\n"
    "    <StorageClass>Archive</StorageClass>\n"
    "  </Contents>\n"
    "  <CommonPrefixes><Prefix>%E4%B8%AD%2F</Prefix></CommonPrefixes>\n"
    "  <Contents><Key>x+y%25z</Key><Size>0</Size></Contents>\n"
    "  <CommonPrefixes>\n"
    "    <Prefix>fun%2Bny%2F</Prefix>\n"
    "  </CommonPrefixes>\n"
    "  <KeyCount>5</KeyCount>\n"
    "  <NextContinuationToken>CgJiYw%2B%2B%3D+x</NextContinuationToken>\n"
    "  <EncodingType>url</EncodingType>\n"
    "</ListBucketResult>\n";

static void check_v2_page(struct oss_xml *x)
{
    assert_int_equal(oss_xml_list_count(x), 5);
    assert_true(oss_xml_list_truncated(x));
    /* The token is decoded, with '+' kept (see oss_xml.c). */
    assert_string_equal(oss_xml_list_next_token(x), "CgJiYw++=+x");

    const struct oss_list_entry *e = oss_xml_list_entry(x, 0);
    assert_non_null(e);
    assert_string_equal(e->key, "a b");
    assert_false(e->is_prefix);
    assert_int_equal(e->size, 344606);
    assert_int_equal(e->mtime, 1703835902);
    assert_string_equal(e->etag, "\"5B3C1A2E053D763E1B002CC607C5A0FE\"");
    assert_int_equal(e->storage_class, OSS_SC_STANDARD);

    e = oss_xml_list_entry(x, 1);
    assert_string_equal(e->key, "+");
    assert_true(e->size == UINT64_MAX);
    assert_int_equal(e->mtime, 1330072952);
    assert_string_equal(e->etag, "\"x\"");
    assert_int_equal(e->storage_class, OSS_SC_ARCHIVE);

    e = oss_xml_list_entry(x, 2);
    assert_string_equal(e->key, "\xe4\xb8\xad/");
    assert_true(e->is_prefix);
    assert_string_equal(e->etag, "");

    e = oss_xml_list_entry(x, 3);
    assert_string_equal(e->key, "x y%z");
    assert_false(e->is_prefix);
    assert_int_equal(e->size, 0);
    assert_int_equal(e->mtime, 0);
    assert_int_equal(e->storage_class, OSS_SC_STANDARD);

    e = oss_xml_list_entry(x, 4);
    assert_string_equal(e->key, "fun+ny/");
    assert_true(e->is_prefix);

    assert_null(oss_xml_list_entry(x, 5));
}

static void test_list_v2_url(void **state)
{
    (void)state;
    struct oss_xml *x = parse_ok(OSS_XML_LIST, v2_page, 0);
    check_v2_page(x);
    oss_xml_free(x);
}

static void test_list_chunked(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 2, 3, 7, 64, 4096};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct oss_xml *x = parse_ok(OSS_XML_LIST, v2_page, chunks[i]);
        check_v2_page(x);
        oss_xml_free(x);
    }
}

static void test_list_v1_marker(void **state)
{
    (void)state;
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                      "<ListBucketResult>"
                      "<Name>b</Name><Prefix>fun%2F</Prefix><Marker></Marker><MaxKeys>2</MaxKeys>"
                      "<Delimiter>%2F</Delimiter><EncodingType>url</EncodingType>"
                      "<IsTruncated>true</IsTruncated><NextMarker>fun%2Fa%2Bb+c</NextMarker>"
                      "<Contents><Key>fun%2F1</Key><Size>1</Size></Contents>"
                      "<Contents><Key>fun%2Fa%2Bb+c</Key><Size>2</Size></Contents>"
                      "</ListBucketResult>";
    struct oss_xml *x = parse_ok(OSS_XML_LIST, doc, 0);
    assert_int_equal(oss_xml_list_count(x), 2);
    assert_string_equal(oss_xml_list_entry(x, 1)->key, "fun/a+b c");
    /* NextMarker is a key: '+' is a space as in keys. */
    assert_string_equal(oss_xml_list_next_token(x), "fun/a+b c");
    oss_xml_free(x);

    /* S3 v1 without a delimiter sends no NextMarker: the greatest key is the marker. */
    doc = "<ListBucketResult><Name>b</Name><Marker/><IsTruncated>true</IsTruncated>"
          "<Contents><Key>b</Key></Contents><Contents><Key>c</Key></Contents>"
          "<Contents><Key>a</Key></Contents></ListBucketResult>";
    x = parse_ok(OSS_XML_LIST, doc, 0);
    assert_string_equal(oss_xml_list_next_token(x), "c");
    oss_xml_free(x);

    /* Not truncated: no token, whatever the page says. */
    doc = "<ListBucketResult><Marker/><IsTruncated>false</IsTruncated><NextMarker>zz</NextMarker>"
          "<Contents><Key>a</Key></Contents></ListBucketResult>";
    x = parse_ok(OSS_XML_LIST, doc, 0);
    assert_false(oss_xml_list_truncated(x));
    assert_string_equal(oss_xml_list_next_token(x), "");
    oss_xml_free(x);
}

static void test_list_s3_ns(void **state)
{
    (void)state;
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bucket</Name><Prefix/><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>true</IsTruncated>"
        "<Contents><Key>ExampleObject.txt</Key><LastModified>2013-09-17T18:07:53.000Z"
        "</LastModified><ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag>"
        "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>857</Size>"
        "<StorageClass>REDUCED_REDUNDANCY</StorageClass></Contents>"
        "<s3:Contents xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s3:Key>a b+c</s3:Key>"
        "<s3:Size>1</s3:Size><s3:StorageClass>GLACIER</s3:StorageClass></s3:Contents>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken>"
        "</ListBucketResult>";
    struct oss_xml *x = parse_ok(OSS_XML_LIST, doc, 0);
    assert_int_equal(oss_xml_list_count(x), 2);
    const struct oss_list_entry *e = oss_xml_list_entry(x, 0);
    assert_string_equal(e->key, "ExampleObject.txt");
    assert_int_equal(e->size, 857);
    assert_int_equal(e->mtime, 1379441273);
    assert_string_equal(e->etag, "\"599bab3ed2c697f1d26842727561fd94\"");
    assert_int_equal(e->storage_class, OSS_SC_OTHER);
    e = oss_xml_list_entry(x, 1);
    assert_string_equal(e->key, "a b+c"); /* not url-encoded: verbatim */
    assert_int_equal(e->storage_class, OSS_SC_ARCHIVE);
    assert_string_equal(oss_xml_list_next_token(x),
                        "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    oss_xml_free(x);

    /* The same unencoded S3 token survives encoding-type=url ('+' kept). */
    doc = "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
          "<NextContinuationToken>1ue+Gc/x=</NextContinuationToken></ListBucketResult>";
    x = parse_ok(OSS_XML_LIST, doc, 0);
    assert_string_equal(oss_xml_list_next_token(x), "1ue+Gc/x=");
    oss_xml_free(x);
}

static void test_list_empty(void **state)
{
    (void)state;
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<ListBucketResult><Name>b</Name><Prefix>nothing%2F</Prefix>"
                      "<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
                      "<IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>"
                      "</ListBucketResult>";
    struct oss_xml *x = parse_ok(OSS_XML_LIST, doc, 0);
    assert_int_equal(oss_xml_list_count(x), 0);
    assert_null(oss_xml_list_entry(x, 0));
    assert_false(oss_xml_list_truncated(x));
    assert_string_equal(oss_xml_list_next_token(x), "");
    oss_xml_free(x);

    x = parse_ok(OSS_XML_LIST, "<ListBucketResult/>", 0);
    assert_int_equal(oss_xml_list_count(x), 0);
    oss_xml_free(x);
}

/* A page of N entries whose keys are KEYLEN bytes long; percent-encodes every byte if ENC. */
static char *make_page(size_t n, size_t keylen, bool enc, size_t *len)
{
    struct buf b;
    buf_init(&b, OSS_MAX_LIST_BODY);
    assert_int_equal(buf_puts(&b, enc ? "<ListBucketResult><EncodingType>url</EncodingType>"
                                      : "<ListBucketResult>"),
                     0);
    for (size_t i = 0; i < n; i++) {
        char head[32];
        snprintf(head, sizeof(head), "%08zu", i);
        assert_int_equal(buf_puts(&b, "<Contents><Key>"), 0);
        for (size_t j = 0; j < keylen; j++) {
            char c = j < 8 ? head[j] : 'k';
            if (enc)
                assert_int_equal(buf_printf(&b, "%%%02X", (unsigned char)c), 0);
            else
                assert_int_equal(buf_append(&b, &c, 1), 0);
        }
        assert_int_equal(
            buf_printf(&b, "</Key><ETag>\"e%zu\"</ETag><Size>%zu</Size></Contents>", i, i), 0);
    }
    assert_int_equal(buf_puts(&b, "<IsTruncated>false</IsTruncated></ListBucketResult>"), 0);
    return buf_detach(&b, len);
}

static void test_list_big_page(void **state)
{
    (void)state;
    /* 1000 entries of 1023-byte keys, encoded (3 MiB): the arena grows many times over and every
       pointer must still be right at the end. */
    size_t len;
    char *doc = make_page(1000, OSS_MAX_KEY_LEN, true, &len);
    struct oss_xml *x = oss_xml_new(OSS_XML_LIST);
    assert_int_equal(feed_chunks(x, doc, len, 16384), 0);
    assert_int_equal(oss_xml_list_count(x), 1000);
    for (size_t i = 0; i < 1000; i++) {
        const struct oss_list_entry *e = oss_xml_list_entry(x, i);
        char head[16], etag[24];
        snprintf(head, sizeof(head), "%08zu", i);
        snprintf(etag, sizeof(etag), "\"e%zu\"", i);
        assert_int_equal(strlen(e->key), OSS_MAX_KEY_LEN);
        assert_memory_equal(e->key, head, 8);
        assert_int_equal(e->key[OSS_MAX_KEY_LEN - 1], 'k');
        assert_string_equal(e->etag, etag);
        assert_int_equal(e->size, i);
    }
    oss_xml_free(x);
    free(doc);

    /* Exactly OSS_XML_MAX_ENTRIES is fine, one more is not. */
    doc = make_page(OSS_XML_MAX_ENTRIES, 8, false, &len);
    x = oss_xml_new(OSS_XML_LIST);
    assert_int_equal(oss_xml_feed(x, doc, len, true), 0);
    assert_int_equal(oss_xml_list_count(x), OSS_XML_MAX_ENTRIES);
    oss_xml_free(x);
    free(doc);
    doc = make_page(OSS_XML_MAX_ENTRIES + 1, 8, false, &len);
    parse_bad_n(OSS_XML_LIST, doc, len, "more than 5000 entries");
    free(doc);

    /* A key of 1024 bytes, encoded or not, is refused. */
    doc = make_page(1, OSS_MAX_KEY_LEN + 1, true, &len);
    parse_bad_n(OSS_XML_LIST, doc, len, "over-long <Key>");
    free(doc);
    doc = make_page(1, OSS_MAX_KEY_LEN + 1, false, &len);
    parse_bad_n(OSS_XML_LIST, doc, len, "over-long <Key>");
    free(doc);
}

static void test_list_bad(void **state)
{
    (void)state;
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><Contents><Size>1</Size></Contents>"
              "</ListBucketResult>",
              "<Contents> without <Key>");
    parse_bad(OSS_XML_LIST, "<ListBucketResult><CommonPrefixes/></ListBucketResult>",
              "<CommonPrefixes> without <Prefix>");
    static const char *const sizes[] = {
        "12a", "-1", "+1", " 1", "1 ", "", "18446744073709551616", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc),
                 "<ListBucketResult><Contents><Key>k</Key><Size>%s</Size></Contents>"
                 "</ListBucketResult>",
                 sizes[i]);
        parse_bad(OSS_XML_LIST, doc, "bad <Size> value");
    }
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><Contents><Key>k</Key><LastModified>yesterday</LastModified>"
              "</Contents></ListBucketResult>",
              "bad <LastModified>");
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><Contents><Key>k</Key><Key>j</Key></Contents></ListBucketResult>",
              "duplicate <Key>");
    parse_bad(OSS_XML_LIST, "<ListBucketResult><Contents><Key></Key></Contents></ListBucketResult>",
              "empty <Key>");
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><Contents><Key>a<b/>c</Key></Contents></ListBucketResult>",
              "unexpected element <b> inside <Key>");
    parse_bad(OSS_XML_LIST, "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
              "bad <IsTruncated>");
    parse_bad(OSS_XML_LIST, "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
              "truncated listing without");
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><IsTruncated>true</IsTruncated>"
              "<NextContinuationToken></NextContinuationToken></ListBucketResult>",
              "empty <NextContinuationToken>");
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%2</Key>"
              "</Contents></ListBucketResult>",
              "bad percent-encoding");
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%00b</Key>"
              "</Contents></ListBucketResult>",
              "<Key>");
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
              "<NextContinuationToken>%zz</NextContinuationToken></ListBucketResult>",
              "NextContinuationToken");
    parse_bad(OSS_XML_LIST, "<Error><Code>AccessDenied</Code></Error>",
              "unexpected root element <Error>, expected <ListBucketResult>");
    parse_bad(OSS_XML_LIST, "<ListBucketResult><Contents><Key>k</Key></Contents>", NULL);
    parse_bad(OSS_XML_LIST, "", NULL);
    parse_bad(OSS_XML_LIST, "not xml", NULL);
    parse_bad(OSS_XML_LIST, "<ListBucketResult>&undefined;</ListBucketResult>", NULL);
    parse_bad(OSS_XML_LIST,
              "<ListBucketResult><Contents><Key>&#0;</Key></Contents></ListBucketResult>", NULL);

    char etag[256];
    memset(etag, 'e', sizeof(etag));
    char doc[512];
    snprintf(doc, sizeof(doc),
             "<ListBucketResult><Contents><Key>k</Key><ETag>%.*s</ETag></Contents>"
             "</ListBucketResult>",
             OSS_MAX_ETAG_LEN + 1, etag);
    parse_bad(OSS_XML_LIST, doc, "<ETag> longer than");
}

static void test_limits(void **state)
{
    (void)state;
    /* Depth: 16 levels are fine, 17 are not. */
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < OSS_XML_MAX_DEPTH; i++)
        assert_int_equal(buf_puts(&b, i == 0 ? "<ListBucketResult>" : "<a>"), 0);
    for (int i = OSS_XML_MAX_DEPTH - 1; i >= 0; i--)
        assert_int_equal(buf_puts(&b, i == 0 ? "</ListBucketResult>" : "</a>"), 0);
    struct oss_xml *x = parse_ok(OSS_XML_LIST, b.data, 0);
    oss_xml_free(x);
    buf_reset(&b);
    for (int i = 0; i <= OSS_XML_MAX_DEPTH; i++)
        assert_int_equal(buf_puts(&b, i == 0 ? "<ListBucketResult>" : "<a>"), 0);
    parse_bad(OSS_XML_LIST, b.data, "nested deeper than 16");

    /* Text: OSS_XML_MAX_TEXT bytes in an ignored element are fine, one more is not. */
    buf_reset(&b);
    assert_int_equal(buf_puts(&b, "<ListBucketResult><Name>"), 0);
    for (int i = 0; i < OSS_XML_MAX_TEXT; i++)
        assert_int_equal(buf_append(&b, "n", 1), 0);
    assert_int_equal(buf_puts(&b, "</Name></ListBucketResult>"), 0);
    x = parse_ok(OSS_XML_LIST, b.data, 0);
    oss_xml_free(x);
    buf_reset(&b);
    assert_int_equal(buf_puts(&b, "<ListBucketResult>\n<Contents><Key>"), 0);
    for (int i = 0; i <= OSS_XML_MAX_TEXT; i++)
        assert_int_equal(buf_append(&b, "k", 1), 0);
    assert_int_equal(buf_puts(&b, "</Key></Contents></ListBucketResult>"), 0);
    parse_bad(OSS_XML_LIST, b.data, "xml: line 2: element text too long in <Key>");
    /* The same, fed a byte at a time (expat hands text over in pieces). */
    x = oss_xml_new(OSS_XML_LIST);
    assert_int_equal(feed_chunks(x, b.data, b.len, 1), -EBADMSG);
    assert_non_null(strstr(oss_xml_error(x), "element text too long in <Key>"));
    oss_xml_free(x);

    /* Body size: an error body over 64 KiB is refused even if well-formed so far (a comment:
       it holds no element text). */
    buf_reset(&b);
    assert_int_equal(buf_puts(&b, "<Error><!--"), 0);
    x = oss_xml_new(OSS_XML_ERROR);
    assert_int_equal(oss_xml_feed(x, b.data, b.len, false), 0);
    char spaces[4096];
    memset(spaces, ' ', sizeof(spaces));
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++)
        rc = oss_xml_feed(x, spaces, sizeof(spaces), false);
    assert_int_equal(rc, -EBADMSG);
    assert_non_null(strstr(oss_xml_error(x), "body larger than 65536 bytes"));
    oss_xml_free(x);
    buf_release(&b);

    /* DOCTYPE, entity declarations, external entities, billion laughs: all refused. */
    parse_bad(OSS_XML_LIST, "<!DOCTYPE ListBucketResult><ListBucketResult/>",
              "DOCTYPE not allowed");
    parse_bad(OSS_XML_LIST,
              "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
              "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
              "<ListBucketResult><Name>&lol1;</Name></ListBucketResult>",
              "DOCTYPE not allowed");
    parse_bad(OSS_XML_ERROR,
              "<!DOCTYPE Error [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
              "<Error><Code>&xxe;</Code></Error>",
              "DOCTYPE not allowed");
    parse_bad(OSS_XML_STAT, "<!DOCTYPE BucketStat SYSTEM \"http://127.0.0.1/x.dtd\"><BucketStat/>",
              "DOCTYPE not allowed");
}

static void test_error(void **state)
{
    (void)state;
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error>\n"
        "  <Code>RequestTimeTooSkewed</Code>\n"
        "  <Message>The difference between the request time and the current time is too "
        "large.</Message>\n"
        "  <RequestId>5C3D9175B6FC201293AD****</RequestId>\n"
        "  <HostId>examplebucket.oss-cn-hangzhou.aliyuncs.com</HostId>\n"
        "  <MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>\n"
        "  <RequestTime>2019-01-15T07:48:28.000Z</RequestTime>\n"
        "  <ServerTime>2019-01-15T08:07:21.000Z</ServerTime>\n"
        "  <Nested><A>1</A></Nested>\n"
        "  <EC>0002-00000904</EC>\n"
        "  <Code>Ignored</Code>\n"
        "</Error>\n";
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        struct oss_xml *x = parse_ok(OSS_XML_ERROR, doc, chunk);
        assert_string_equal(oss_xml_error_code(x), "RequestTimeTooSkewed");
        assert_string_equal(oss_xml_error_message(x), "The difference between the request time "
                                                      "and the current time is too large.");
        assert_string_equal(oss_xml_error_request_id(x), "5C3D9175B6FC201293AD****");
        assert_string_equal(oss_xml_error_field(x, "ServerTime"), "2019-01-15T08:07:21.000Z");
        assert_string_equal(oss_xml_error_field(x, "EC"), "0002-00000904");
        assert_string_equal(oss_xml_error_field(x, "HostId"),
                            "examplebucket.oss-cn-hangzhou.aliyuncs.com");
        assert_null(oss_xml_error_field(x, "Nested"));
        assert_null(oss_xml_error_field(x, "A"));
        assert_null(oss_xml_error_field(x, "StringToSign"));
        oss_xml_free(x);
    }

    /* Minimal and empty errors: absent fields read as "". */
    struct oss_xml *x = parse_ok(OSS_XML_ERROR, "<Error/>", 0);
    assert_string_equal(oss_xml_error_code(x), "");
    assert_string_equal(oss_xml_error_message(x), "");
    assert_string_equal(oss_xml_error_request_id(x), "");
    assert_null(oss_xml_error_field(x, "ServerTime"));
    oss_xml_free(x);

    /* S3 shape; more than 16 fields: the first 16 are kept. */
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(buf_puts(&b, "<Error><Code>NoSuchKey</Code>"), 0);
    for (int i = 0; i < 30; i++)
        assert_int_equal(buf_printf(&b, "<F%d>v%d</F%d>", i, i, i), 0);
    assert_int_equal(buf_puts(&b, "</Error>"), 0);
    x = parse_ok(OSS_XML_ERROR, b.data, 0);
    assert_string_equal(oss_xml_error_code(x), "NoSuchKey");
    assert_string_equal(oss_xml_error_field(x, "F14"), "v14");
    assert_null(oss_xml_error_field(x, "F15"));
    oss_xml_free(x);
    buf_release(&b);

    /* Before the final feed nothing is valid. */
    x = oss_xml_new(OSS_XML_ERROR);
    assert_int_equal(oss_xml_feed(x, "<Error><Code>X</Code>", 21, false), 0);
    assert_string_equal(oss_xml_error_code(x), "");
    assert_string_equal(oss_xml_error(x), "xml: incomplete document");
    assert_int_equal(oss_xml_feed(x, "</Error>", 8, true), 0);
    assert_string_equal(oss_xml_error_code(x), "X");
    assert_int_equal(oss_xml_feed(x, "", 0, true), -EBADMSG);
    oss_xml_free(x);

    parse_bad(OSS_XML_ERROR, "<ListBucketResult/>", "expected <Error>");
    parse_bad(OSS_XML_ERROR, "<html><body>502 Bad Gateway</body></html>", "expected <Error>");
}

static void test_stat(void **state)
{
    (void)state;
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<BucketStat>\n"
                      "  <Storage>1600</Storage>\n"
                      "  <ObjectCount>230</ObjectCount>\n"
                      "  <MultipartUploadCount>40</MultipartUploadCount>\n"
                      "  <LastModifiedTime>1643341269</LastModifiedTime>\n"
                      "  <StandardStorage>430</StandardStorage>\n"
                      "  <StandardObjectCount>66</StandardObjectCount>\n"
                      "</BucketStat>";
    struct oss_xml *x = parse_ok(OSS_XML_STAT, doc, 1);
    struct oss_bucket_stat st;
    oss_xml_stat(x, &st);
    assert_int_equal(st.storage, 1600);
    assert_int_equal(st.object_count, 230);
    oss_xml_free(x);

    parse_bad(OSS_XML_STAT, "<BucketStat><Storage>1</Storage></BucketStat>",
              "without <ObjectCount>");
    parse_bad(OSS_XML_STAT, "<BucketStat><ObjectCount>1</ObjectCount></BucketStat>",
              "without <Storage>");
    parse_bad(OSS_XML_STAT,
              "<BucketStat><Storage>-1</Storage><ObjectCount>1</ObjectCount></BucketStat>",
              "bad <Storage> value");
    parse_bad(OSS_XML_STAT,
              "<BucketStat><Storage>1</Storage><ObjectCount>1.5</ObjectCount></BucketStat>",
              "bad <ObjectCount> value");
    parse_bad(OSS_XML_STAT,
              "<BucketStat><Storage>1</Storage><Storage>2</Storage><ObjectCount>1</ObjectCount>"
              "</BucketStat>",
              "duplicate <Storage>");

    /* A failed or unfinished parse reports zeros. */
    x = oss_xml_new(OSS_XML_STAT);
    st.storage = st.object_count = 7;
    oss_xml_stat(x, &st);
    assert_int_equal(st.storage, 0);
    assert_int_equal(st.object_count, 0);
    oss_xml_free(x);
    oss_xml_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_v2_url),    cmocka_unit_test(test_list_chunked),
        cmocka_unit_test(test_list_v1_marker), cmocka_unit_test(test_list_s3_ns),
        cmocka_unit_test(test_list_empty),     cmocka_unit_test(test_list_big_page),
        cmocka_unit_test(test_list_bad),       cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error),          cmocka_unit_test(test_stat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
