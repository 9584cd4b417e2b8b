/* oss/oss_xml_i.h - streaming XML parsing of OSS/S3 answers with expat (private to oss/).
 *
 * A parser is fed body chunks as they arrive (oss_xml_feed) and keeps only what it needs: the
 * current element's text, bounded by OSS_XML_MAX_TEXT, and for listings the page's entries in an
 * arena bounded by OSS_MAX_LIST_BODY. Nesting deeper than OSS_XML_MAX_DEPTH, a DOCTYPE or entity
 * declaration (no billion laughs), or any over-long field fails the parse with -EBADMSG.
 */
#ifndef EFC_OSS_XML_I_H
#define EFC_OSS_XML_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oss/oss.h"

#define OSS_XML_MAX_DEPTH 16
#define OSS_XML_MAX_TEXT  8192
#define OSS_XML_MAX_ENTRIES 5000

enum oss_xml_kind {
    OSS_XML_LIST,  /* ListBucketResult (v1 or v2) */
    OSS_XML_ERROR, /* Error */
    OSS_XML_STAT,  /* BucketStat */
};

struct oss_xml;

struct oss_xml *oss_xml_new(enum oss_xml_kind kind);
void oss_xml_free(struct oss_xml *x);
/* Feeds a chunk; FINAL on the last one. Returns 0 or -EBADMSG (see oss_xml_error). */
int oss_xml_feed(struct oss_xml *x, const char *data, size_t len, bool final);
const char *oss_xml_error(const struct oss_xml *x);

/* Results, valid after a successful final feed, until oss_xml_free. */

/* OSS_XML_LIST. Keys, prefixes and the token are percent-decoded when the answer says
   <EncodingType>url</EncodingType>. */
size_t oss_xml_list_count(const struct oss_xml *x);
const struct oss_list_entry *oss_xml_list_entry(const struct oss_xml *x, size_t i);
bool oss_xml_list_truncated(const struct oss_xml *x);
const char *oss_xml_list_next_token(const struct oss_xml *x); /* v2 token or v1 NextMarker, "" if none */

/* OSS_XML_ERROR: Code, Message, RequestId (each "" when absent), and ServerTime if present. */
const char *oss_xml_error_code(const struct oss_xml *x);
const char *oss_xml_error_message(const struct oss_xml *x);
const char *oss_xml_error_request_id(const struct oss_xml *x);
/* Any child of <Error> holding only text (the first 16 distinct names), e.g. "ServerTime",
   "StringToSign", "EC"; NULL when absent. */
const char *oss_xml_error_field(const struct oss_xml *x, const char *name);

/* OSS_XML_STAT */
void oss_xml_stat(const struct oss_xml *x, struct oss_bucket_stat *st);

#endif
