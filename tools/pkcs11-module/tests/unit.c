/* Unit tests of keyserver-pkcs11: the logic that needs no Keyserver (mechanism plans, DigestInfo, problem
 * codes, configuration, the key list parser, the PKCS#11 session table under threads). Certificates are made
 * by the openssl command and public values compared with what it prints, signatures made by it are verified
 * locally (C_Verify); hostile inputs come from a seeded
 * generator (same seed every run, KS_SEED to change it). A stand-in Keyserver on loopback (real keys, scripted hostile
 * answers, a hostile token endpoint) drives the PKCS#11 interface the way callers do. The Keyserver itself is tested
 * end to end in apps/keyserver-e2e/src/pkcs11-module.spec.ts. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../src/ks.h"

static int passed, failed;
static const char *current;

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "  FAIL %s:%d %s: ", __FILE__, __LINE__, current);    \
      fprintf(stderr, __VA_ARGS__);                                         \
      fprintf(stderr, "\n");                                                \
      ok_ = 0;                                                              \
    }                                                                       \
  } while (0)

#define TEST(name) for (int ok_ = (current = (name), 1), once_ = 1; once_; once_ = 0, report(ok_))

static void report(int ok) {
  if (ok) passed++;
  else failed++;
  printf("%s %s\n", ok ? "ok  " : "FAIL", current);
}

/* Seconds an instrumented run (make tsan: KS_TIME_SLACK) may add to the tests' time bounds. */
static long time_slack(void) {
  const char *v = getenv("KS_TIME_SLACK");
  return v ? strtol(v, NULL, 10) : 0;
}

static unsigned long long rng_state;
static unsigned long long rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static struct ks_key key_of(enum ks_key_type t, enum ks_hash h) {
  struct ks_key k;
  memset(&k, 0, sizeof k);
  k.keyid = (char *)"fw-key";
  k.type = t;
  k.hash = h;
  k.sig_len = t == KS_KEY_RSA ? 384 : 64;
  return k;
}

/* ---- mechanisms ---- */

static void test_mech_plan(void) {
  struct ks_key ec = key_of(KS_KEY_EC, KS_SHA256), ec384 = key_of(KS_KEY_EC, KS_SHA384), rsa = key_of(KS_KEY_RSA, KS_SHA256),
                ed = key_of(KS_KEY_ED25519, KS_SHA512);
  /* CK_EDDSA_PARAMS of PKCS#11 3.0: phFlag, context length, context. */
  struct {
    CK_BBOOL ph;
    CK_ULONG ctxlen;
    CK_BYTE_PTR ctx;
  } pure = {CK_FALSE, 0, NULL}, prehash = {CK_TRUE, 0, NULL}, context = {CK_FALSE, 3, (CK_BYTE_PTR) "abc"};
  CK_RSA_PKCS_PSS_PARAMS pss256 = {CKM_SHA256, CKG_MGF1_SHA256, 32}, pss_salt = {CKM_SHA256, CKG_MGF1_SHA256, 20},
                         pss_mgf = {CKM_SHA256, CKG_MGF1_SHA384, 32}, pss384 = {CKM_SHA384, CKG_MGF1_SHA384, 48};
  struct {
    const char *name;
    struct ks_key *key;
    CK_MECHANISM m;
    CK_RV want;
    const char *padding, *format;
    int local;
  } cases[] = {
      {"ok CKM_ECDSA: a bare digest, r||s", &ec, {CKM_ECDSA, NULL, 0}, CKR_OK, "none", "p1363", 0},
      {"ok CKM_ECDSA_SHA256 hashes locally", &ec, {CKM_ECDSA_SHA256, NULL, 0}, CKR_OK, "none", "p1363", 1},
      {"ok CKM_ECDSA_SHA384 on a SHA-384 key", &ec384, {CKM_ECDSA_SHA384, NULL, 0}, CKR_OK, "none", "p1363", 1},
      {"fail CKM_ECDSA_SHA384 on a SHA-256 key", &ec, {CKM_ECDSA_SHA384, NULL, 0}, CKR_MECHANISM_INVALID, 0, 0, 0},
      {"fail CKM_ECDSA on an RSA key", &rsa, {CKM_ECDSA, NULL, 0}, CKR_KEY_TYPE_INCONSISTENT, 0, 0, 0},
      {"ok CKM_RSA_PKCS: a DigestInfo", &rsa, {CKM_RSA_PKCS, NULL, 0}, CKR_OK, "digestinfo", "asn1", 0},
      {"ok CKM_SHA256_RSA_PKCS", &rsa, {CKM_SHA256_RSA_PKCS, NULL, 0}, CKR_OK, "digestinfo", "asn1", 1},
      {"fail CKM_SHA512_RSA_PKCS on a SHA-256 key", &rsa, {CKM_SHA512_RSA_PKCS, NULL, 0}, CKR_MECHANISM_INVALID, 0, 0, 0},
      {"fail CKM_RSA_PKCS on an EC key", &ec, {CKM_RSA_PKCS, NULL, 0}, CKR_KEY_TYPE_INCONSISTENT, 0, 0, 0},
      {"ok CKM_RSA_PKCS_PSS with SHA-256, MGF1-SHA256, salt 32", &rsa, {CKM_RSA_PKCS_PSS, &pss256, sizeof pss256}, CKR_OK, "pss", "asn1", 0},
      {"ok CKM_SHA256_RSA_PKCS_PSS", &rsa, {CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof pss256}, CKR_OK, "pss", "asn1", 1},
      {"fail PSS without parameters", &rsa, {CKM_RSA_PKCS_PSS, NULL, 0}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail PSS with a short parameter length", &rsa, {CKM_RSA_PKCS_PSS, &pss256, 8}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail PSS with a 20-byte salt", &rsa, {CKM_RSA_PKCS_PSS, &pss_salt, sizeof pss_salt}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail PSS with another MGF1 hash", &rsa, {CKM_RSA_PKCS_PSS, &pss_mgf, sizeof pss_mgf}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail PSS SHA-384 parameters on a SHA-256 key", &rsa, {CKM_RSA_PKCS_PSS, &pss384, sizeof pss384}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail CKM_SHA384_RSA_PKCS_PSS on a SHA-256 key", &rsa, {CKM_SHA384_RSA_PKCS_PSS, &pss384, sizeof pss384}, CKR_MECHANISM_INVALID, 0, 0, 0},
      {"fail parameters on CKM_ECDSA", &ec, {CKM_ECDSA, &pss256, sizeof pss256}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      /* CKM_EDDSA: the message goes whole to a message sign order (padding and format NULL). */
      {"ok CKM_EDDSA on an Ed25519 key: the message itself, not hashed", &ed, {CKM_EDDSA, NULL, 0}, CKR_OK, NULL, NULL, 0},
      {"ok CKM_EDDSA with CK_EDDSA_PARAMS of pure Ed25519", &ed, {CKM_EDDSA, &pure, sizeof pure}, CKR_OK, NULL, NULL, 0},
      {"fail CKM_EDDSA with phFlag (Ed25519ph)", &ed, {CKM_EDDSA, &prehash, sizeof prehash}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail CKM_EDDSA with a context (Ed25519ctx)", &ed, {CKM_EDDSA, &context, sizeof context}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail CKM_EDDSA with a short parameter length", &ed, {CKM_EDDSA, &pure, 1}, CKR_MECHANISM_PARAM_INVALID, 0, 0, 0},
      {"fail CKM_EDDSA on an EC key", &ec, {CKM_EDDSA, NULL, 0}, CKR_KEY_TYPE_INCONSISTENT, 0, 0, 0},
      {"fail CKM_EDDSA on an RSA key", &rsa, {CKM_EDDSA, NULL, 0}, CKR_KEY_TYPE_INCONSISTENT, 0, 0, 0},
      {"fail CKM_ECDSA on an Ed25519 key", &ed, {CKM_ECDSA, NULL, 0}, CKR_KEY_TYPE_INCONSISTENT, 0, 0, 0},
      {"fail CKM_SHA512_RSA_PKCS on an Ed25519 key", &ed, {CKM_SHA512_RSA_PKCS, NULL, 0}, CKR_KEY_TYPE_INCONSISTENT, 0, 0, 0},
      {"fail an unknown mechanism", &rsa, {CKM_SHA256_HMAC, NULL, 0}, CKR_MECHANISM_INVALID, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TEST(cases[i].name) {
      struct ks_mech_plan plan;
      char why[300] = "";
      CK_RV rv = ks_mech_plan(cases[i].key, &cases[i].m, &plan, why, sizeof why);
      CHECK(rv == cases[i].want, "got %s want %s (%s)", ks_rv_name(rv), ks_rv_name(cases[i].want), why);
      if (rv == CKR_OK && cases[i].want == CKR_OK && !cases[i].padding) {
        CHECK(plan.message == 1 && !plan.padding && !plan.format && !plan.hashes_locally, "a message plan");
      } else if (rv == CKR_OK && cases[i].want == CKR_OK) {
        CHECK(!plan.message, "not a message plan");
        CHECK(!strcmp(plan.padding, cases[i].padding), "padding %s", plan.padding);
        CHECK(!strcmp(plan.format, cases[i].format), "format %s", plan.format);
        CHECK(plan.hashes_locally == cases[i].local, "hashes_locally %d", plan.hashes_locally);
      }
      if (rv != CKR_OK) CHECK(why[0] != 0, "a refusal says why");
    }
  }
}

/* Our DigestInfo prefixes are what OpenSSL encodes as X509_SIG {AlgorithmIdentifier(hash, NULL), digest}. */
static void test_digestinfo(void) {
  const EVP_MD *mds[] = {EVP_sha256(), EVP_sha384(), EVP_sha512()};
  for (int h = KS_SHA256; h <= KS_SHA512; h++) {
    char name[80];
    snprintf(name, sizeof name, "ok the %s DigestInfo matches OpenSSL's DER encoding", ks_hash_name((enum ks_hash)h));
    TEST(name) {
      unsigned char digest[64];
      for (int i = 0; i < 64; i++) digest[i] = (unsigned char)(i * 7);
      X509_SIG *sig = X509_SIG_new();
      X509_ALGOR *alg;
      ASN1_OCTET_STRING *os;
      X509_SIG_getm(sig, &alg, &os);
      X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(mds[h])), V_ASN1_NULL, NULL);
      ASN1_OCTET_STRING_set(os, digest, (int)ks_hash_len((enum ks_hash)h));
      unsigned char *der = NULL;
      int len = i2d_X509_SIG(sig, &der);
      size_t pl;
      const unsigned char *p = ks_digestinfo_prefix((enum ks_hash)h, &pl);
      CHECK(len == (int)(pl + ks_hash_len((enum ks_hash)h)), "length %d", len);
      CHECK(len > 0 && !memcmp(der, p, pl) && !memcmp(der + pl, digest, ks_hash_len((enum ks_hash)h)), "bytes differ");
      CHECK(ks_digestinfo_hash(der, (size_t)len) == h, "hash not recognised");
      CHECK(ks_digestinfo_hash(der, (size_t)len - 1) == -1, "a cut DigestInfo is refused");
      OPENSSL_free(der);
      X509_SIG_free(sig);
    }
  }
  TEST("property: random bytes are never taken for a DigestInfo unless they are one") {
    for (int i = 0; i < 20000; i++) {
      unsigned char buf[100];
      size_t n = rnd() % sizeof buf;
      for (size_t j = 0; j < n; j++) buf[j] = (unsigned char)rnd();
      if (i % 3 == 0 && n >= 19) memcpy(buf, ks_digestinfo_prefix((enum ks_hash)(rnd() % 3), &(size_t){0}), 19);
      int h = ks_digestinfo_hash(buf, n);
      if (h >= 0) {
        size_t pl;
        const unsigned char *p = ks_digestinfo_prefix((enum ks_hash)h, &pl);
        CHECK(n == pl + ks_hash_len((enum ks_hash)h) && !memcmp(buf, p, pl), "false positive at %d", i);
      }
    }
  }
}

static void test_mech_input(void) {
  struct ks_key rsa = key_of(KS_KEY_RSA, KS_SHA256), ec = key_of(KS_KEY_EC, KS_SHA256);
  unsigned char d32[32] = {1}, d48[48] = {2}, out[256];
  size_t outlen, pl;
  char why[300];
  const unsigned char *p256 = ks_digestinfo_prefix(KS_SHA256, &pl);
  unsigned char di256[51], di384[67];
  memcpy(di256, p256, pl);
  memcpy(di256 + pl, d32, 32);
  memcpy(di384, ks_digestinfo_prefix(KS_SHA384, &pl), pl);
  memcpy(di384 + pl, d48, 48);
  struct ks_mech_plan raw = {CKM_RSA_PKCS, 0, KS_SHA256, "digestinfo", "asn1"};
  struct ks_mech_plan sha = {CKM_SHA256_RSA_PKCS, 1, KS_SHA256, "digestinfo", "asn1"};
  struct ks_mech_plan ecdsa = {CKM_ECDSA, 0, KS_SHA256, "none", "p1363"};
  TEST("ok CKM_RSA_PKCS sends the caller's DigestInfo as it is") {
    CHECK(ks_mech_input(&rsa, &raw, di256, sizeof di256, out, &outlen, why, sizeof why) == CKR_OK, "%s", why);
    CHECK(outlen == sizeof di256 && !memcmp(out, di256, outlen), "bytes");
  }
  TEST("fail CKM_RSA_PKCS with a bare digest (CKR_DATA_INVALID)") {
    CHECK(ks_mech_input(&rsa, &raw, d32, sizeof d32, out, &outlen, why, sizeof why) == CKR_DATA_INVALID, "rv");
  }
  TEST("fail CKM_RSA_PKCS with a SHA-384 DigestInfo for a SHA-256 key (CKR_DATA_INVALID)") {
    CHECK(ks_mech_input(&rsa, &raw, di384, sizeof di384, out, &outlen, why, sizeof why) == CKR_DATA_INVALID, "rv");
  }
  TEST("ok CKM_SHA256_RSA_PKCS wraps the local digest in a DigestInfo") {
    CHECK(ks_mech_input(&rsa, &sha, d32, sizeof d32, out, &outlen, why, sizeof why) == CKR_OK, "%s", why);
    CHECK(outlen == sizeof di256 && !memcmp(out, di256, outlen), "bytes");
  }
  TEST("fail CKM_ECDSA with a 48-byte digest on a SHA-256 key (CKR_DATA_LEN_RANGE)") {
    CHECK(ks_mech_input(&ec, &ecdsa, d48, sizeof d48, out, &outlen, why, sizeof why) == CKR_DATA_LEN_RANGE, "rv");
  }
  TEST("ok CKM_ECDSA sends a 32-byte digest as it is") {
    CHECK(ks_mech_input(&ec, &ecdsa, d32, sizeof d32, out, &outlen, why, sizeof why) == CKR_OK && outlen == 32, "rv");
  }
  TEST("ok the allowed mechanisms of a key are its hash's only") {
    CK_MECHANISM_TYPE m[8];
    size_t n = ks_mech_allowed(&rsa, m, 8);
    CHECK(n == 4 && m[0] == CKM_RSA_PKCS && m[1] == CKM_SHA256_RSA_PKCS && m[2] == CKM_RSA_PKCS_PSS && m[3] == CKM_SHA256_RSA_PKCS_PSS, "rsa");
    struct ks_key ec512 = key_of(KS_KEY_EC, KS_SHA512), ed = key_of(KS_KEY_ED25519, KS_SHA512);
    n = ks_mech_allowed(&ec512, m, 8);
    CHECK(n == 2 && m[0] == CKM_ECDSA && m[1] == CKM_ECDSA_SHA512, "ec");
    n = ks_mech_allowed(&ed, m, 8);
    CHECK(n == 1 && m[0] == CKM_EDDSA, "ed25519: CKM_EDDSA only");
  }
  struct {
    const char *name;
    size_t len;
    CK_RV want;
  } sizes[] = {
      {"fail an empty CKM_EDDSA message (CKR_DATA_LEN_RANGE)", 0, CKR_DATA_LEN_RANGE},
      {"ok a one-byte CKM_EDDSA message", 1, CKR_OK},
      {"ok a CKM_EDDSA message of exactly 64 KiB", KS_MAX_MESSAGE, CKR_OK},
      {"fail a CKM_EDDSA message one byte over 64 KiB (CKR_DATA_LEN_RANGE)", KS_MAX_MESSAGE + 1, CKR_DATA_LEN_RANGE},
  };
  struct ks_key ed = key_of(KS_KEY_ED25519, KS_SHA512);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    TEST(sizes[i].name) {
      why[0] = 0;
      CK_RV rv = ks_mech_message(&ed, sizes[i].len, why, sizeof why);
      CHECK(rv == sizes[i].want, "got %s (%s)", ks_rv_name(rv), why);
      if (rv != CKR_OK) CHECK(strstr(why, "65536") != NULL, "the refusal names the cap: %s", why);
    }
  }
}

static void test_problems(void) {
  struct {
    long status;
    const char *code;
    CK_RV want;
  } cases[] = {
      {409, "usage_exhausted", CKR_FUNCTION_REJECTED},
      {409, "operation_not_usable", CKR_FUNCTION_REJECTED},
      {403, "outside_window", CKR_FUNCTION_REJECTED},
      {403, "digest_not_allowed", CKR_FUNCTION_REJECTED},
      {403, "key_not_in_operation", CKR_KEY_FUNCTION_NOT_PERMITTED},
      {403, "key_not_permitted", CKR_KEY_FUNCTION_NOT_PERMITTED},
      {409, "key_not_usable", CKR_KEY_FUNCTION_NOT_PERMITTED},
      {401, "invalid_token", CKR_USER_NOT_LOGGED_IN},
      {403, "unknown_subject", CKR_USER_NOT_LOGGED_IN},
      {400, "digest_length_mismatch", CKR_DATA_LEN_RANGE},
      {400, "malformed_digestinfo", CKR_DATA_INVALID},
      {503, "reservation_expired", CKR_DEVICE_ERROR},
      {0, NULL, CKR_DEVICE_ERROR},
      {500, NULL, CKR_DEVICE_ERROR},
      {429, "rate_limited", CKR_DEVICE_ERROR},
      {409, "a_future_code", CKR_FUNCTION_REJECTED},
      {418, NULL, CKR_FUNCTION_FAILED},
      {409, "conflict", CKR_DEVICE_ERROR}, /* the module's own retry met its first request still signing */
      {413, "payload_too_large", CKR_DATA_LEN_RANGE},
      {413, NULL, CKR_DATA_LEN_RANGE},
      /* The status class first: a code refines a 4xx only. */
      {500, "usage_exhausted", CKR_DEVICE_ERROR},
      {502, "validation_failed", CKR_DEVICE_ERROR},
      {429, "usage_exhausted", CKR_DEVICE_ERROR},
      {302, "usage_exhausted", CKR_DEVICE_ERROR},
      {204, NULL, CKR_DEVICE_ERROR},
      {101, NULL, CKR_DEVICE_ERROR},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[120];
    snprintf(name, sizeof name, "ok HTTP %ld %s is %s", cases[i].status, cases[i].code ? cases[i].code : "(no code)", ks_rv_name(cases[i].want));
    TEST(name) { CHECK(ks_problem_to_rv(cases[i].status, cases[i].code) == cases[i].want, "got %s", ks_rv_name(ks_problem_to_rv(cases[i].status, cases[i].code))); }
  }
  TEST("ok a refused operation is never CKR_DEVICE_ERROR") {
    const char *refusals[] = {"usage_exhausted", "operation_not_usable", "outside_window", "key_not_in_operation", "key_not_permitted"};
    for (int i = 0; i < 5; i++) CHECK(ks_problem_to_rv(409, refusals[i]) != CKR_DEVICE_ERROR, "%s", refusals[i]);
  }
}

/* ---- configuration ---- */

static const char *fake_env[64][2];
static const char *fake_getenv(const char *n) {
  for (int i = 0; fake_env[i][0]; i++)
    if (!strcmp(fake_env[i][0], n)) return fake_env[i][1];
  return NULL;
}
static void set_env(int i, const char *n, const char *v) {
  fake_env[i][0] = n;
  fake_env[i][1] = v;
  fake_env[i + 1][0] = NULL;
}

static void test_config(void) {
  struct ks_config c;
  char err[400];
  TEST("ok the environment alone configures the module; auth defaults to the client secret") {
    set_env(0, "KEYSERVER_URL", "https://ks.example/");
    set_env(1, "KEYSERVER_CLIENT_SECRET", "s3cret");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0, "%s", err);
    CHECK(!strcmp(c.api_url, "https://ks.example"), "trailing slash kept: %s", c.api_url);
    CHECK(c.auth == KS_AUTH_SECRET && c.timeout_seconds == 30 && !strcmp(c.token_label, "Keyserver"), "defaults");
    ks_config_free(&c);
  }
  TEST("ok a certificate setting selects the certificate login, KEYSERVER_TOKEN the ready token") {
    set_env(0, "KEYSERVER_URL", "http://127.0.0.1:3000");
    set_env(1, "KEYSERVER_CLIENT_CERTIFICATE", "/c.pem");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0 && c.auth == KS_AUTH_CERTIFICATE, "%s", err);
    ks_config_free(&c);
    set_env(2, "KEYSERVER_TOKEN", "t");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0 && c.auth == KS_AUTH_TOKEN, "%s", err);
    ks_config_free(&c);
  }
  TEST("ok KEYSERVER_CLIENT_ID wins over AZURESUBSCRIPTION_CLIENT_ID in either order") {
    set_env(0, "KEYSERVER_URL", "https://ks.example");
    set_env(1, "AZURESUBSCRIPTION_CLIENT_ID", "azure");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0 && !strcmp(c.client_id, "azure"), "azure only");
    ks_config_free(&c);
    set_env(2, "KEYSERVER_CLIENT_ID", "explicit");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0 && !strcmp(c.client_id, "explicit"), "explicit: %s", c.client_id);
    ks_config_free(&c);
  }
  struct {
    const char *name, *key, *value;
  } bad[] = {
      {"fail plain http to a non-loopback Keyserver", "KEYSERVER_URL", "http://ks.example"},
      {"fail http to a host that starts like loopback", "KEYSERVER_URL", "http://localhost.evil.example"},
      {"fail a URL of another scheme", "KEYSERVER_URL", "file:///etc/passwd"},
      {"fail an unknown login method", "KEYSERVER_AUTH", "password"},
      {"fail a login method in another case", "KEYSERVER_AUTH", "SECRET"},
      {"fail a timeout of 0", "KEYSERVER_PKCS11_TIMEOUT", "0"},
      {"fail KEYSERVER_PKCS11_EDDSA other than on or off", "KEYSERVER_PKCS11_EDDSA", "yes"},
      {"fail KEYSERVER_PKCS11_EDDSA in another case", "KEYSERVER_PKCS11_EDDSA", "ON"},
      {"fail a timeout with trailing text", "KEYSERVER_PKCS11_TIMEOUT", "10s"},
      {"fail a huge timeout", "KEYSERVER_PKCS11_TIMEOUT", "99999999999999999999"},
      {"fail a value with a line break", "KEYSERVER_SCOPE", "a\nb"},
      {"fail plain http to a non-loopback token endpoint", "KEYSERVER_TOKEN_ENDPOINT", "http://login.example/token"},
      /* Loopback judged by the host libcurl will connect to, not by how the URL starts. */
      {"fail http to a name that starts like a loopback address", "KEYSERVER_URL", "http://127.0.0.1.evil.example"},
      {"fail http to a name that starts with 127.", "KEYSERVER_URL", "http://127.evil.example/"},
      {"fail http with loopback as user info before another host", "KEYSERVER_URL", "http://localhost:@evil.example/"},
      {"fail http with 127.0.0.1 as user info before another host", "KEYSERVER_URL", "http://127.0.0.1@evil.example"},
      {"fail http with [::1] as user info before another host", "KEYSERVER_URL", "http://[::1]@evil.example:80/"},
      {"fail http to a token endpoint behind loopback user info", "KEYSERVER_TOKEN_ENDPOINT", "http://localhost:x@login.example/token"},
      /* SYSTEM_ACCESSTOKEN is sent to it as a bearer token: the same rule as for the Keyserver and the token endpoint. */
      {"fail plain http to a non-loopback pipeline OIDC endpoint", "SYSTEM_OIDCREQUESTURI", "http://dev.azure.example/oidctoken"},
      {"fail a pipeline OIDC endpoint of another scheme", "SYSTEM_OIDCREQUESTURI", "ftp://dev.azure.example/oidctoken"},
      /* A password in a URL would be logged (the URL is, at info) and sent next to the bearer token. */
      {"fail a Keyserver URL with a user and password", "KEYSERVER_URL", "https://user:s3cret@ks.example"},
      {"fail a token endpoint with a user and password", "KEYSERVER_TOKEN_ENDPOINT", "https://user:s3cret@login.example/token"},
      {"fail a pipeline OIDC endpoint with a user", "SYSTEM_OIDCREQUESTURI", "https://build@dev.azure.example/oidctoken"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    TEST(bad[i].name) {
      set_env(0, "KEYSERVER_URL", "https://ks.example");
      set_env(!strcmp(bad[i].key, "KEYSERVER_URL") ? 0 : 1, bad[i].key, bad[i].value);
      CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == -1, "accepted");
      CHECK(err[0] != 0, "no sentence");
      ks_config_free(&c);
    }
  }
  TEST("ok plain http to loopback: 127.0.0.0/8, [::1], localhost") {
    const char *urls[] = {"http://127.0.0.1:3000", "http://127.1.2.3/", "http://[::1]:8080", "http://localhost", "http://LOCALHOST:1/x",
                          "https://ks.example"};
    for (int i = 0; i < 6; i++) {
      set_env(0, "KEYSERVER_URL", urls[i]);
      CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0, "%s: %s", urls[i], err);
      ks_config_free(&c);
    }
  }
  TEST("ok Ed25519 keys are off unless KEYSERVER_PKCS11_EDDSA=on") {
    set_env(0, "KEYSERVER_URL", "https://ks.example");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0 && c.eddsa == 0, "default %s", err);
    ks_config_free(&c);
    set_env(1, "KEYSERVER_PKCS11_EDDSA", "on");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0 && c.eddsa == 1, "on %s", err);
    ks_config_free(&c);
  }
  TEST("fail a missing KEYSERVER_URL names the variable") {
    set_env(0, "KEYSERVER_SCOPE", "x");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == -1 && strstr(err, "KEYSERVER_URL"), "%s", err);
    ks_config_free(&c);
  }
  TEST("ok a config file: comments, spaces, CRLF, quotes; the environment overrides it") {
    char path[] = "/tmp/ks-p11-unit-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# Keyserver\r\nKEYSERVER_URL = https://file.example\r\n\n  KEYSERVER_SCOPE=\"api://x/.default\"\nKEYSERVER_OPERATION_ID=from-file\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
    close(fd);
    set_env(0, "KEYSERVER_PKCS11_CONFIG", path);
    set_env(1, "KEYSERVER_OPERATION_ID", "from-env");
    CHECK(ks_config_load(&c, fake_getenv, err, sizeof err) == 0, "%s", err);
    CHECK(!strcmp(c.api_url, "https://file.example") && !strcmp(c.scope, "api://x/.default") && !strcmp(c.operation_id, "from-env"), "values");
    ks_config_free(&c);
    unlink(path);
  }
  struct {
    const char *name;
    const char *text;
    size_t len;
  } badfile[] = {
      {"fail a config line without =", "KEYSERVER_URL https://x\n", 0},
      {"fail an unknown setting in the file", "KEYSERVER_PASSWORD=x\n", 0},
      {"fail a NUL byte in the file", "KEYSERVER_URL=https://x\0y\n", 25},
      {"fail an empty key", "=x\n", 0},
  };
  for (size_t i = 0; i < sizeof badfile / sizeof badfile[0]; i++) {
    TEST(badfile[i].name) {
      memset(&c, 0, sizeof c);
      size_t len = badfile[i].len ? badfile[i].len : strlen(badfile[i].text);
      CHECK(ks_config_parse_text(&c, badfile[i].text, len, err, sizeof err) == -1, "accepted");
      CHECK(strstr(err, "line 1") != NULL, "no line number: %s", err);
      ks_config_free(&c);
    }
  }
  TEST("property: random config text never crashes and an accepted value is stored as given") {
    static const char alphabet[] = "KEYSERVER_URL_SCOPE=#\"\r\n \t\x01\xff\xc3\xa9=abc";
    for (int i = 0; i < 5000; i++) {
      char text[200];
      size_t n = rnd() % sizeof text;
      for (size_t j = 0; j < n; j++) text[j] = alphabet[rnd() % (sizeof alphabet - 1)];
      if (i % 2) {
        int m = snprintf(text, sizeof text, "KEYSERVER_SCOPE=v%llx\n", rnd());
        n = (size_t)m > n ? (size_t)m : n;
      }
      memset(&c, 0, sizeof c);
      int rc = ks_config_parse_text(&c, text, n, err, sizeof err);
      if (rc == 0 && c.scope) CHECK(strlen(c.scope) <= 8192 && !strchr(c.scope, '\n'), "stored %s", c.scope);
      ks_config_free(&c);
    }
  }
  fake_env[0][0] = NULL;
}

static void test_log(void) {
  TEST("ok a log line is printable ASCII: a keyid's bidi override, escape or DEL from the Keyserver become '?'") {
    char path[] = "/tmp/ks-p11-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    struct ks_key k = key_of(KS_KEY_EC, KS_SHA256);
    k.keyid = (char *)"fw-\xe2\x80\xae" "evil\x1b[31m\x7f\xff";
    struct ks_mech_plan plan;
    char why[300];
    /* What C_SignInit logs when a mechanism does not fit: the reason names the key. */
    CK_RV rv = ks_mech_plan(&k, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS, NULL, 0}, &plan, why, sizeof why);
    ks_log_open("error", path);
    ks_log(KS_LOG_ERROR, "C_SignInit: %s -> %s", why, ks_rv_name(rv));
    ks_log_open("none", NULL);
    char line[600] = "";
    FILE *fp = fdopen(fd, "r");
    size_t n = fp ? fread(line, 1, sizeof line - 1, fp) : 0;
    if (fp) fclose(fp);
    unlink(path);
    CHECK(n > 0 && line[n - 1] == '\n', "no line");
    for (size_t i = 0; i + 1 < n; i++) CHECK((unsigned char)line[i] >= 0x20 && (unsigned char)line[i] < 0x7f, "byte 0x%02x at %zu", (unsigned char)line[i], i);
    CHECK(strstr(line, "key fw-???evil?[31m??"), "%s", line);
  }
}

static void test_tokens(void) {
  TEST("ok a token is renewed a quarter of its lifetime before it expires, between 30 s and 5 min") {
    CHECK(ks_refresh_margin(3600) == 300, "1 h: %ld", ks_refresh_margin(3600));
    CHECK(ks_refresh_margin(600) == 150, "10 min: %ld", ks_refresh_margin(600));
    CHECK(ks_refresh_margin(90) == 30, "90 s: %ld", ks_refresh_margin(90));
    CHECK(ks_refresh_margin(16) == 8, "16 s: %ld", ks_refresh_margin(16));
  }
  TEST("ok the ksctl cache file name is ksctl's: sha256(endpoint|client|scope)[:32] (sha256sum)") {
    struct ks_config c;
    memset(&c, 0, sizeof c);
    c.token_endpoint = (char *)"https://login.example/t/oauth2/v2.0/token";
    c.client_id = (char *)"9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
    c.scope = (char *)"api://x/keyserver";
    c.cache_dir = (char *)"/cache";
    char path[4200];
    CHECK(ks_ksctl_cache_file(&c, path, sizeof path) == 0, "rc");
    CHECK(!strcmp(path, "/cache/token-a102c440eac7103b2e5b6e4f808bcb15.json"), "%s", path);
  }
  /* RFC 6750 §2.1 b64token, as ksctl (client.ts bearerToken): letters, digits, -._~+/ and '=' only at the end. Anything else
   * would reach the Authorization header as it is (libcurl sends it unchanged). */
  {
    char longest[8194], too_long[8194];
    memset(longest, 'a', 8192);
    longest[8192] = 0;
    memset(too_long, 'a', 8193);
    too_long[8193] = 0;
    struct {
      const char *name, *token;
      int want;
    } cases[] = {
        {"ok a JWT (three base64url segments)", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_", 1},
        {"ok base64 with + / and padding", "ab+c/d==", 1},
        {"ok the b64token punctuation -._~", "a-b.c_d~e", 1},
        {"ok 8192 characters", longest, 1},
        {"fail empty", "", 0},
        {"fail 8193 characters", too_long, 0},
        {"fail CR LF inside (a header it would add)", "tok\r\nX-Injected: 1", 0},
        {"fail a space", "tok en", 0},
        {"fail a tab", "tok\ten", 0},
        {"fail a double quote (visible ASCII, no b64token)", "tok\"en", 0},
        {"fail a comma", "tok,en", 0},
        {"fail a semicolon", "tok;en", 0},
        {"fail '=' inside (padding only at the end)", "a=b", 0},
        {"fail '=' alone", "==", 0},
        {"fail a non-ASCII byte", "tok\xc3\xa9", 0},
        {"fail DEL", "tok\x7f", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      char name[200];
      snprintf(name, sizeof name, "%s: ks_token_usable is %d", cases[i].name, cases[i].want);
      TEST(name) CHECK(ks_token_usable(cases[i].token) == cases[i].want, "got %d", ks_token_usable(cases[i].token));
    }
    TEST("property: a token ks_token_usable takes holds only b64token characters, '=' only at its end (seeded random strings)") {
      const char alphabet[] = "aZ09-._~+/= \"\r\n\t,;:\\\x7f\x80\xff";
      int taken = 0, wrong = 0;
      char first[16] = "";
      for (int n = 0; n < 20000; n++) {
        char t[16];
        size_t len = 1 + rnd() % (sizeof t - 1);
        for (size_t k = 0; k < len; k++) t[k] = alphabet[rnd() % (sizeof alphabet - 1)];
        t[len] = 0;
        if (!ks_token_usable(t)) continue;
        taken++;
        size_t eq = strspn(t, "aZ09-._~+/");
        if (!(eq > 0 && strspn(t + eq, "=") == len - eq) && !wrong++) memcpy(first, t, sizeof first);
      }
      CHECK(taken > 0, "none taken");
      CHECK(!wrong, "%d of %d taken are no b64token, first: %s", wrong, taken, first);
    }
  }
  /* ksctl's rule (client.ts readCache): only a regular file of this user that no one else may read or write is a
   * login; a symlink or a file with group/other bits may have been planted (another identity's token) or read. */
  {
    char dir[] = "/tmp/ks-cache-XXXXXX";
    if (!mkdtemp(dir)) perror("mkdtemp");
    char file[128], planted[128], link_[128];
    snprintf(file, sizeof file, "%s/token.json", dir);
    snprintf(planted, sizeof planted, "%s/planted.json", dir);
    snprintf(link_, sizeof link_, "%s/link.json", dir);
    const char *login = "{\"accessToken\":\"at\",\"expiresAt\":1,\"refreshToken\":\"rt\"}";
    FILE *f = fopen(file, "w");
    if (f) {
      fputs(login, f);
      fclose(f);
    }
    f = fopen(planted, "w");
    if (f) {
      fputs(login, f);
      fclose(f);
    }
    chmod(planted, 0600);
    if (symlink(planted, link_) != 0) perror("symlink");
    struct {
      const char *name;
      const char *path;
      mode_t mode;
      int want;
    } cases[] = {
        {"ok a 0600 cache file is ksctl's login", file, 0600, 0},
        {"fail a cache file readable by others (0644) is no login", file, 0644, -1},
        {"fail a cache file writable by the group (0620) is no login", file, 0620, -1},
        {"fail a symlink to a 0600 login elsewhere is no login", link_, 0, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      TEST(cases[i].name) {
        if (cases[i].mode) chmod(cases[i].path, cases[i].mode);
        char *access = NULL, *refresh = NULL;
        double expires = 0;
        int rc = ks_read_ksctl_cache(cases[i].path, &access, &expires, &refresh);
        CHECK(rc == cases[i].want, "rc %d", rc);
        free(access);
        free(refresh);
      }
    }
    unlink(link_);
    unlink(planted);
    unlink(file);
    rmdir(dir);
  }
}

/* ---- keys ---- */

static char tmpdir_[64];

static char *sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  if (!p) return NULL;
  char *out = calloc(1, 65536);
  size_t n = fread(out, 1, 65535, p);
  out[n] = 0;
  pclose(p);
  return out;
}

/* A PEM certificate made by the openssl command for `newkey` (e.g. "ec -pkeyopt ec_paramgen_curve:P-384"). */
static char *certificate(const char *name, const char *newkey) {
  free(sh("cd %s && openssl genpkey -algorithm %s -out %s.key 2>/dev/null && openssl req -x509 -new -key %s.key -subj /CN=%s "
          "-days 2 -out %s.pem 2>/dev/null",
          tmpdir_, newkey, name, name, name, name));
  char path[200];
  snprintf(path, sizeof path, "%s/%s.pem", tmpdir_, name);
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  char *pem = calloc(1, 65536);
  size_t n = fread(pem, 1, 65535, f);
  pem[n] = 0;
  fclose(f);
  return pem;
}

static char *json_escape_pem(const char *pem) {
  char *out = calloc(1, strlen(pem) * 2 + 1), *o = out;
  for (const char *p = pem; *p; p++) {
    if (*p == '\n') {
      *o++ = '\\';
      *o++ = 'n';
    } else *o++ = *p;
  }
  return out;
}

static void test_keys(void) {
  snprintf(tmpdir_, sizeof tmpdir_, "/tmp/ks-p11-keys-XXXXXX");
  if (!mkdtemp(tmpdir_)) return;
  struct {
    const char *name, *alg, *info;
    enum ks_key_type type;
    enum ks_hash hash;
    size_t sig_len;
    const char *params_hex;
  } kinds[] = {
      {"p256", "EC -pkeyopt ec_paramgen_curve:P-256", "FW EC-P256 SHA-256, 0 approver(s)", KS_KEY_EC, KS_SHA256, 64, "06082a8648ce3d030107"},
      {"p384", "EC -pkeyopt ec_paramgen_curve:P-384", "FW EC-P384 SHA-384, 1 approver(s)", KS_KEY_EC, KS_SHA384, 96, "06052b81040022"},
      {"p521", "EC -pkeyopt ec_paramgen_curve:P-521", "FW EC-P521 SHA-512, 2 approver(s)", KS_KEY_EC, KS_SHA512, 132, "06052b81040023"},
      {"rsa", "RSA -pkeyopt rsa_keygen_bits:2048", "FW RSA-2048 SHA-256, 0 approver(s)", KS_KEY_RSA, KS_SHA256, 256, NULL},
      /* CKK_EC_EDWARDS: CKA_EC_PARAMS is the OID 1.3.101.112 (what SoftHSM writes and pkcs11-tool and
       * pkcs11-provider read), CKA_EC_POINT the 32-byte key in an OCTET STRING; signatures are 64 bytes. */
      {"ed25519", "ED25519", "FW Ed25519 SHA-512, 0 approver(s)", KS_KEY_ED25519, KS_SHA512, 64, "06032b6570"},
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    char name[120];
    snprintf(name, sizeof name, "ok a %s key's objects carry the values openssl prints", kinds[i].name);
    TEST(name) {
      char *pem = certificate(kinds[i].name, kinds[i].alg);
      CHECK(pem && strstr(pem, "BEGIN CERTIFICATE"), "openssl made no certificate");
      if (!pem) continue;
      char *esc = json_escape_pem(pem);
      char *json = malloc(strlen(esc) + 400);
      sprintf(json, "[{\"keyid\":\"k-%s\",\"keyinfo\":\"%s\",\"certificate\":\"%s\"}]", kinds[i].name, kinds[i].info, esc);
      struct ks_keylist l;
      char err[200];
      CHECK(ks_keys_parse(json, strlen(json), &l, err, sizeof err) == 0 && l.n == 1, "parse: %s", err);
      if (l.n == 1) {
        struct ks_key *k = &l.keys[0];
        CHECK(k->type == kinds[i].type && k->hash == kinds[i].hash && k->sig_len == kinds[i].sig_len, "type/hash/sig_len %zu", k->sig_len);
        if (kinds[i].params_hex) {
          char *hex = ks_hex(k->ec_params, k->ec_params_len);
          CHECK(!strcmp(hex, kinds[i].params_hex), "CKA_EC_PARAMS %s", hex);
          free(hex);
          /* CKA_EC_POINT is a DER OCTET STRING around the point openssl prints as the public key. */
          size_t hdr = k->ec_point_len - 2 < 0x80 ? 2 : 3; /* DER length in one byte, or 0x81 + one byte */
          char *pub = sh("cd %s && openssl pkey -in %s.key -pubout -outform DER | tail -c %zu | od -An -tx1 | tr -d ' \\n'", tmpdir_,
                         kinds[i].name, k->ec_point_len - hdr);
          char *mine = ks_hex(k->ec_point + hdr, k->ec_point_len - hdr);
          CHECK(pub && !strcmp(pub, mine), "point %s vs %s", mine, pub);
          CHECK(k->ec_point[0] == 0x04 && (hdr == 2 ? k->ec_point[1] == k->ec_point_len - 2 : k->ec_point[1] == 0x81), "OCTET STRING header");
          free(pub);
          free(mine);
        } else {
          char *mod = sh("cd %s && openssl x509 -in %s.pem -noout -modulus | cut -d= -f2 | tr A-F a-f | tr -d '\\n'", tmpdir_, kinds[i].name);
          char *mine = ks_hex(k->modulus, k->modulus_len);
          CHECK(mod && !strcmp(mod, mine), "modulus differs");
          CHECK(k->exponent_len == 3 && k->exponent[0] == 1 && k->exponent[2] == 1, "exponent 65537");
          free(mod);
          free(mine);
        }
        /* CKA_VALUE is the certificate's DER, as openssl writes it. */
        char *der = sh("cd %s && openssl x509 -in %s.pem -outform DER | od -An -tx1 | tr -d ' \\n'", tmpdir_, kinds[i].name);
        char *mine = ks_hex(k->cert_der, k->cert_der_len);
        CHECK(der && !strcmp(der, mine), "certificate DER differs");
        free(der);
        free(mine);
      }
      ks_keys_free(&l);
      free(json);
      free(esc);
      free(pem);
    }
  }
  TEST("ok KEYSERVER_PKCS11_EDDSA=off drops the Ed25519 keys and keeps the others in order") {
    char *ed = certificate("ed25519", "ED25519"), *ec = certificate("p256", "EC -pkeyopt ec_paramgen_curve:P-256");
    char *e1 = json_escape_pem(ed ? ed : ""), *e2 = json_escape_pem(ec ? ec : "");
    char *json = malloc(strlen(e1) + 2 * strlen(e2) + 600);
    sprintf(json, "[{\"keyid\":\"a\",\"keyinfo\":\"FW EC-P256 SHA-256, 0 approver(s)\",\"certificate\":\"%s\"},"
                  "{\"keyid\":\"ed\",\"keyinfo\":\"FW Ed25519 SHA-512, 0 approver(s)\",\"certificate\":\"%s\"},"
                  "{\"keyid\":\"b\",\"keyinfo\":\"FW EC-P256 SHA-256, 0 approver(s)\",\"certificate\":\"%s\"}]", e2, e1, e2);
    struct ks_keylist l;
    char err[200];
    CHECK(ks_keys_parse(json, strlen(json), &l, err, sizeof err) == 0 && l.n == 3, "parse: %zu %s", l.n, err);
    CHECK(ks_keys_drop_ed25519(&l) == 1 && l.n == 2, "dropped");
    CHECK(l.n == 2 && !strcmp(l.keys[0].keyid, "a") && !strcmp(l.keys[1].keyid, "b"), "order");
    ks_keys_free(&l);
    free(json);
    free(e1);
    free(e2);
    free(ed);
    free(ec);
  }
  TEST("ok non-FW keys, malformed entries and duplicates are skipped, the rest listed") {
    char *pem = certificate("p256", "EC -pkeyopt ec_paramgen_curve:P-256");
    char *esc = json_escape_pem(pem ? pem : "");
    char *json = malloc(strlen(esc) * 4 + 2000);
    sprintf(json,
            "[{\"keyid\":\"ca\",\"keyinfo\":\"CA EC-P256 SHA-256, 0 approver(s)\",\"certificate\":\"%s\"},"
            "{\"keyid\":\"fw\",\"keyinfo\":\"FW EC-P256 SHA-256, 0 approver(s)\",\"certificate\":\"%s\"},"
            "{\"keyid\":\"fw\",\"keyinfo\":\"FW EC-P256 SHA-256, 0 approver(s)\",\"certificate\":\"%s\"},"
            "{\"keyid\":42,\"keyinfo\":\"FW\",\"certificate\":\"x\"},"
            "{\"keyid\":\"\",\"keyinfo\":\"FW EC-P256\",\"certificate\":\"%s\"},"
            "{\"keyid\":\"bad-cert\",\"keyinfo\":\"FW EC-P256\",\"certificate\":\"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\"},"
            "null, [], \"x\"]",
            esc, esc, esc, esc);
    struct ks_keylist l;
    char err[200];
    CHECK(ks_keys_parse(json, strlen(json), &l, err, sizeof err) == 0, "%s", err);
    CHECK(l.n == 1 && !strcmp(l.keys[0].keyid, "fw"), "listed %zu", l.n);
    ks_keys_free(&l);
    free(json);
    free(esc);
    free(pem);
  }
  TEST("fail an answer that is not a JSON array") {
    const char *bad[] = {"", "{}", "null", "[", "\"x\"", "{\"keys\":[]}"};
    for (int i = 0; i < 6; i++) {
      struct ks_keylist l;
      char err[200];
      CHECK(ks_keys_parse(bad[i], strlen(bad[i]), &l, err, sizeof err) == -1, "accepted %s", bad[i]);
      ks_keys_free(&l);
    }
  }
  TEST("fail hostile keyids: 129 bytes skipped, a lone surrogate refuses the answer; NUL, bidi, non-BMP kept as bytes") {
    char *pem = certificate("p256", "EC -pkeyopt ec_paramgen_curve:P-256");
    char *esc = json_escape_pem(pem ? pem : "");
    char longid[130];
    memset(longid, 'a', 129);
    longid[129] = 0;
    const char *ids[] = {longid, "nul\\u0000tail", "\\u202egnp.exe", "\\ud83d\\ude00", "\\ud800"};
    size_t want[] = {0, 1, 1, 1, 0};
    int want_rc[] = {0, 0, 0, 0, -1};
    for (int i = 0; i < 5; i++) {
      char *json = malloc(strlen(esc) + 600);
      sprintf(json, "[{\"keyid\":\"%s\",\"keyinfo\":\"FW EC-P256 SHA-256\",\"certificate\":\"%s\"}]", ids[i], esc);
      struct ks_keylist l;
      char err[200];
      int rc = ks_keys_parse(json, strlen(json), &l, err, sizeof err);
      CHECK(rc == want_rc[i] && l.n == want[i], "%s: rc %d n %zu", ids[i], rc, l.n);
      if (l.n) CHECK(strlen(l.keys[0].keyid) >= 1 && strlen(l.keys[0].keyid) <= 128, "keyid length");
      ks_keys_free(&l);
      free(json);
    }
    free(esc);
    free(pem);
  }
  TEST("property: mutated and deeply nested answers never crash the parser") {
    char *pem = certificate("p256", "EC -pkeyopt ec_paramgen_curve:P-256");
    char *esc = json_escape_pem(pem ? pem : "");
    size_t cap = strlen(esc) + 400;
    char *base = malloc(cap), *buf = malloc(cap);
    int blen = snprintf(base, cap, "[{\"keyid\":\"fw\",\"keyinfo\":\"FW EC-P256 SHA-256\",\"certificate\":\"%s\"}]", esc);
    for (int i = 0; i < 3000; i++) {
      memcpy(buf, base, (size_t)blen);
      int flips = 1 + (int)(rnd() % 4);
      for (int f = 0; f < flips; f++) buf[rnd() % (unsigned)blen] = (char)rnd();
      struct ks_keylist l;
      char err[200];
      ks_keys_parse(buf, (size_t)blen, &l, err, sizeof err);
      ks_keys_free(&l);
    }
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    struct ks_keylist l;
    char err[200];
    ks_keys_parse(deep, 2 * depth, &l, err, sizeof err);
    ks_keys_free(&l);
    free(deep);
    free(base);
    free(buf);
    free(esc);
    free(pem);
  }
  free(sh("rm -rf %s", tmpdir_));
}

/* ---- the PKCS#11 interface without a Keyserver ---- */

static CK_FUNCTION_LIST_PTR f;

static void *session_churn(void *arg) {
  (void)arg;
  for (int i = 0; i < 500; i++) {
    CK_SESSION_HANDLE h;
    if (f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) != CKR_OK) return (void *)1;
    CK_SESSION_INFO info;
    if (f->C_GetSessionInfo(h, &info) != CKR_OK) return (void *)2;
    f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4);
    if (f->C_CloseSession(h) != CKR_OK) return (void *)3;
    if (f->C_CloseSession(h) != CKR_SESSION_HANDLE_INVALID) return (void *)4;
  }
  return NULL;
}

static void *initialize_locking(void *arg) {
  (void)arg;
  CK_C_INITIALIZE_ARGS a;
  memset(&a, 0, sizeof a);
  a.flags = CKF_OS_LOCKING_OK;
  return (void *)(uintptr_t)f->C_Initialize(&a);
}

static void test_api(void) {
  C_GetFunctionList(&f);
  TEST("fail C_Initialize without KEYSERVER_URL (CKR_FUNCTION_FAILED, nothing initialized)") {
    unsetenv("KEYSERVER_URL");
    setenv("KEYSERVER_PKCS11_LOG", "none", 1);
    CHECK(f->C_Initialize(NULL) == CKR_FUNCTION_FAILED, "rv");
    CK_INFO info;
    CHECK(f->C_GetInfo(&info) == CKR_CRYPTOKI_NOT_INITIALIZED, "initialized anyway");
  }
  setenv("KEYSERVER_URL", "http://127.0.0.1:9", 1); /* discard port: nothing listens */
  setenv("KEYSERVER_PKCS11_TIMEOUT", "2", 1);
  setenv("KEYSERVER_CLIENT_ID", "c", 1);
  setenv("KEYSERVER_SCOPE", "s", 1);
  setenv("KEYSERVER_TOKEN", "not-a-real-token", 1);
  TEST("fail C_Initialize with application mutexes and no CKF_OS_LOCKING_OK (CKR_CANT_LOCK)") {
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.CreateMutex = (CK_CREATEMUTEX)1;
    a.DestroyMutex = (CK_DESTROYMUTEX)1;
    a.LockMutex = (CK_LOCKMUTEX)1;
    a.UnlockMutex = (CK_UNLOCKMUTEX)1;
    CHECK(f->C_Initialize(&a) == CKR_CANT_LOCK, "rv");
    a.UnlockMutex = NULL;
    CHECK(f->C_Initialize(&a) == CKR_ARGUMENTS_BAD, "some mutex functions");
    memset(&a, 0, sizeof a);
    a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS;
    CHECK(f->C_Initialize(&a) == CKR_NEED_TO_CREATE_THREADS, "threads");
  }
  TEST("fail C_Initialize with pInitArgs->pReserved set (CKR_ARGUMENTS_BAD, nothing initialized)") {
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.flags = CKF_OS_LOCKING_OK;
    a.pReserved = &a;
    CHECK(f->C_Initialize(&a) == CKR_ARGUMENTS_BAD, "rv");
    CK_INFO info;
    CHECK(f->C_GetInfo(&info) == CKR_CRYPTOKI_NOT_INITIALIZED, "initialized anyway");
  }
  TEST("ok eight threads call C_Initialize with CKF_OS_LOCKING_OK at once: one CKR_OK, seven CKR_CRYPTOKI_ALREADY_INITIALIZED") {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, initialize_locking, NULL);
    int ok = 0, already = 0;
    for (int i = 0; i < 8; i++) {
      void *r;
      pthread_join(t[i], &r);
      ok += (CK_RV)(uintptr_t)r == CKR_OK;
      already += (CK_RV)(uintptr_t)r == CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    CHECK(ok == 1 && already == 7, "%d CKR_OK, %d already", ok, already);
    CHECK(f->C_Initialize(NULL) == CKR_CRYPTOKI_ALREADY_INITIALIZED, "twice");
    CHECK(f->C_Finalize(&ok) == CKR_ARGUMENTS_BAD, "C_Finalize with pReserved");
  }
  TEST("ok one slot, one token that needs no login, the signing mechanisms") {
    CK_ULONG n = 0;
    CK_SLOT_ID slots[2];
    CHECK(f->C_GetSlotList(CK_TRUE, NULL, &n) == CKR_OK && n == 1, "count");
    n = 0;
    CHECK(f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_BUFFER_TOO_SMALL && n == 1, "short buffer");
    CK_TOKEN_INFO t;
    CHECK(f->C_GetTokenInfo(0, &t) == CKR_OK && !(t.flags & CKF_LOGIN_REQUIRED) && !memcmp(t.label, "Keyserver ", 10), "token");
    CHECK(f->C_GetTokenInfo(1, &t) == CKR_SLOT_ID_INVALID, "slot 1");
    CK_MECHANISM_TYPE m[32];
    n = 32;
    /* KEYSERVER_PKCS11_EDDSA is not set: no Ed25519 keys, no CKM_EDDSA. */
    CHECK(f->C_GetMechanismList(0, m, &n) == CKR_OK && n == 12, "mechanisms %lu", n);
    for (CK_ULONG i = 0; i < n; i++) CHECK(m[i] != CKM_EDDSA, "EDDSA listed");
    CK_MECHANISM_INFO mi;
    CHECK(f->C_GetMechanismInfo(0, CKM_ECDSA, &mi) == CKR_OK && (mi.flags & CKF_SIGN) && mi.ulMaxKeySize == 521, "ECDSA");
    CHECK(f->C_GetMechanismInfo(0, CKM_EDDSA, &mi) == CKR_MECHANISM_INVALID, "EDDSA off");
    CHECK(f->C_GetMechanismInfo(0, CKM_RSA_PKCS_OAEP, &mi) == CKR_MECHANISM_INVALID, "OAEP");
  }
  TEST("ok eight threads open, use and close sessions at once (CKF_OS_LOCKING_OK)") {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, session_churn, NULL);
    for (int i = 0; i < 8; i++) {
      void *r;
      pthread_join(t[i], &r);
      CHECK(r == NULL, "thread %d failed at step %ld", i, (long)r);
    }
  }
  TEST("fail an unreachable Keyserver is CKR_DEVICE_ERROR within the timeout, not a hang") {
    CK_SESSION_HANDLE h;
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) == CKR_OK, "open");
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
    time_t t0 = time(NULL);
    CHECK(f->C_FindObjectsInit(h, tmpl, 1) == CKR_DEVICE_ERROR, "rv");
    CHECK(time(NULL) - t0 <= 6 + time_slack(), "took %ld s", (long)(time(NULL) - t0));
    CK_OBJECT_HANDLE o;
    CK_ULONG n;
    CHECK(f->C_FindObjects(h, &o, 1, &n) == CKR_OPERATION_NOT_INITIALIZED, "find without init");
    CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_ECDSA, NULL, 0}, 1) == CKR_KEY_HANDLE_INVALID, "no such key");
    CHECK(f->C_Sign(h, (CK_BYTE_PTR) "x", 1, NULL, &n) == CKR_OPERATION_NOT_INITIALIZED, "sign without init");
    CHECK(f->C_CreateObject(h, NULL, 0, &o) == CKR_FUNCTION_NOT_SUPPORTED, "read-only");
    f->C_CloseSession(h);
  }
  TEST("ok C_Finalize ends everything; calls after it are CKR_CRYPTOKI_NOT_INITIALIZED") {
    CHECK(f->C_Finalize(NULL) == CKR_OK, "finalize");
    CK_ULONG n;
    CHECK(f->C_GetSlotList(CK_TRUE, NULL, &n) == CKR_CRYPTOKI_NOT_INITIALIZED, "after");
    CHECK(f->C_Finalize(NULL) == CKR_CRYPTOKI_NOT_INITIALIZED, "twice");
    /* Every function but C_Initialize and C_GetFunctionList, with NULL and zero arguments: the state is checked
     * before any argument is read. */
    CK_RV rvs[] = {
        f->C_GetInfo(NULL), f->C_GetSlotList(0, NULL, NULL), f->C_GetSlotInfo(0, NULL), f->C_GetTokenInfo(0, NULL),
        f->C_GetMechanismList(0, NULL, NULL), f->C_GetMechanismInfo(0, 0, NULL), f->C_InitToken(0, NULL, 0, NULL),
        f->C_InitPIN(0, NULL, 0), f->C_SetPIN(0, NULL, 0, NULL, 0), f->C_OpenSession(0, 0, NULL, NULL, NULL), f->C_CloseSession(0),
        f->C_CloseAllSessions(0), f->C_GetSessionInfo(0, NULL), f->C_GetOperationState(0, NULL, NULL),
        f->C_SetOperationState(0, NULL, 0, 0, 0), f->C_Login(0, 0, NULL, 0), f->C_Logout(0), f->C_CreateObject(0, NULL, 0, NULL),
        f->C_CopyObject(0, 0, NULL, 0, NULL), f->C_DestroyObject(0, 0), f->C_GetObjectSize(0, 0, NULL),
        f->C_GetAttributeValue(0, 0, NULL, 1), f->C_SetAttributeValue(0, 0, NULL, 0), f->C_FindObjectsInit(0, NULL, 1),
        f->C_FindObjects(0, NULL, 0, NULL), f->C_FindObjectsFinal(0), f->C_SignInit(0, NULL, 0), f->C_Sign(0, NULL, 1, NULL, NULL),
        f->C_SignUpdate(0, NULL, 1), f->C_SignFinal(0, NULL, NULL), f->C_VerifyInit(0, NULL, 0), f->C_Verify(0, NULL, 1, NULL, 0),
        f->C_VerifyUpdate(0, NULL, 1), f->C_VerifyFinal(0, NULL, 0), f->C_SignRecoverInit(0, NULL, 0), f->C_DigestInit(0, NULL),
        f->C_GenerateRandom(0, NULL, 0), f->C_GetFunctionStatus(0), f->C_CancelFunction(0), f->C_WaitForSlotEvent(0, NULL, NULL),
    };
    for (size_t i = 0; i < sizeof rvs / sizeof rvs[0]; i++) CHECK(rvs[i] == CKR_CRYPTOKI_NOT_INITIALIZED, "call %zu: %s", i, ks_rv_name(rvs[i]));
  }
  TEST("ok with KEYSERVER_PKCS11_EDDSA=on the token offers CKM_EDDSA (last), for keys of 255 bits") {
    setenv("KEYSERVER_PKCS11_EDDSA", "on", 1);
    CHECK(f->C_Initialize(NULL) == CKR_OK, "init");
    CK_MECHANISM_TYPE m[32];
    CK_ULONG n = 32;
    CHECK(f->C_GetMechanismList(0, m, &n) == CKR_OK && n == 13 && m[12] == CKM_EDDSA, "mechanisms %lu", n);
    n = 12;
    CHECK(f->C_GetMechanismList(0, m, &n) == CKR_BUFFER_TOO_SMALL && n == 13, "short buffer");
    CK_MECHANISM_INFO mi;
    CHECK(f->C_GetMechanismInfo(0, CKM_EDDSA, &mi) == CKR_OK && (mi.flags & CKF_SIGN) && mi.ulMinKeySize == 255 && mi.ulMaxKeySize == 255, "EDDSA");
    CHECK(f->C_Finalize(NULL) == CKR_OK, "finalize");
    unsetenv("KEYSERVER_PKCS11_EDDSA");
  }
  TEST("fail stale session handles: after C_CloseAllSessions, and from before C_Finalize in the next C_Initialize (never reused)") {
    CHECK(f->C_Initialize(NULL) == CKR_OK, "init");
    CK_SESSION_HANDLE a = 0, b = 0, c = 0;
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &a) == CKR_OK && f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &b) == CKR_OK, "open");
    CHECK(f->C_CloseAllSessions(0) == CKR_OK, "close all");
    CK_SESSION_INFO si;
    CHECK(f->C_GetSessionInfo(a, &si) == CKR_SESSION_HANDLE_INVALID && f->C_CloseSession(b) == CKR_SESSION_HANDLE_INVALID, "closed");
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &a) == CKR_OK, "open");
    CHECK(f->C_Finalize(NULL) == CKR_OK && f->C_Initialize(NULL) == CKR_OK, "again");
    CHECK(f->C_GetSessionInfo(a, &si) == CKR_SESSION_HANDLE_INVALID, "a session of the last initialisation");
    CHECK(f->C_SignInit(a, &(CK_MECHANISM){CKM_ECDSA, NULL, 0}, 1) == CKR_SESSION_HANDLE_INVALID, "signing in it");
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &c) == CKR_OK && c != a && c != b, "reused %lu", c);
    CHECK(f->C_Finalize(NULL) == CKR_OK, "finalize");
  }
}

/* ---- a stand-in Keyserver on loopback: real keys, scripted hostile answers (surface 1) and strict callers (surface 2) ---- */

enum fake_mode { FAKE_SIGN, FAKE_GARBAGE, FAKE_OTHER_KEY, FAKE_RAW, FAKE_SILENT, FAKE_HUGE, FAKE_EXPIRED_THEN_SIGN, FAKE_SLOW, FAKE_SLOW_THEN_CONFLICT };

static struct {
  int fd, port;
  EVP_PKEY *ec, *ec_other, *rsa, *ed;
  char *keys_json;
  pthread_mutex_t lock;
  enum fake_mode mode;
  char raw[8192]; /* FAKE_RAW: the whole answer, status line to body */
  size_t rawlen;
  int orders, others; /* POST /api/signorders seen; requests for any other path than the two */
  char token_answer[512]; /* what POST /token answers (200, or token_status when set) */
  int token_status;
  int token_requests;     /* POST /token seen */
  char refused[128];      /* a bearer token the sign order route answers 401 invalid_token (as the API's guard) */
  char last_auth[300];    /* the Authorization value of the last sign order */
  int injected;           /* requests that carried a header named X-Injected */
  int conns;              /* connection threads still running */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void fake_send(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

static void fake_answer(int fd, int status, const char *body) {
  char head[256];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, strlen(body));
  fake_send(fd, head, (size_t)n);
  fake_send(fd, body, strlen(body));
}

/* What the Keyserver signs: the digest order's input (hex) or the message (base64), with the key named. */
static char *fake_signature(const char *body, int other_key) {
  cJSON *j = cJSON_Parse(body);
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(j, "keyid"), *in = cJSON_GetObjectItemCaseSensitive(j, "inputdata"),
              *pad = cJSON_GetObjectItemCaseSensitive(j, "inputpadding"), *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
  unsigned char data[KS_MAX_MESSAGE + 3], sig[1024];
  size_t dlen = 0, slen = sizeof sig;
  char *hex = NULL;
  if (!cJSON_IsString(kid)) goto done;
  if (cJSON_IsString(msg)) {
    int n = EVP_DecodeBlock(data, (const unsigned char *)msg->valuestring, (int)strlen(msg->valuestring));
    size_t l = strlen(msg->valuestring);
    dlen = (size_t)n - (l && msg->valuestring[l - 1] == '=') - (l > 1 && msg->valuestring[l - 2] == '=');
  } else if (!cJSON_IsString(in) || ks_unhex(in->valuestring, data, sizeof data, &dlen)) goto done;
  if (!strcmp(kid->valuestring, "fw-ed")) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, fake.ed) == 1 && EVP_DigestSign(md, sig, &slen, data, dlen) == 1) hex = ks_hex(sig, slen);
    EVP_MD_CTX_free(md);
    goto done;
  }
  int ec = !strcmp(kid->valuestring, "fw-ec");
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(ec ? (other_key ? fake.ec_other : fake.ec) : fake.rsa, NULL);
  if (!ctx || EVP_PKEY_sign_init(ctx) != 1) goto sign_done;
  if (!ec && cJSON_IsString(pad) && !strcmp(pad->valuestring, "pss")) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) != 1)
      goto sign_done;
  } else if (!ec && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1) goto sign_done;
  if (EVP_PKEY_sign(ctx, sig, &slen, data, dlen) != 1) goto sign_done;
  if (ec) { /* DER to PKCS#11's r || s */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
    if (es) {
      BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
      BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
      slen = 64;
      ECDSA_SIG_free(es);
    } else slen = 0;
  }
  if (slen) hex = ks_hex(sig, slen);
sign_done:
  EVP_PKEY_CTX_free(ctx);
done:
  cJSON_Delete(j);
  return hex;
}

static void *fake_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  static __thread char req[200000];
  size_t n = 0;
  char *end = NULL;
  while (n < sizeof req - 1 && !(end = strstr(req, "\r\n\r\n"))) {
    ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
    if (r <= 0) goto out;
    n += (size_t)r;
    req[n] = 0;
  }
  if (!end) goto out;
  const char *cl = strcasestr(req, "\r\nContent-Length:");
  size_t want = (size_t)(end + 4 - req) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
  while (n < want && n < sizeof req - 1) {
    ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
    if (r <= 0) goto out;
    n += (size_t)r;
    req[n] = 0;
  }
  const char *body = end + 4;
  pthread_mutex_lock(&fake.lock);
  fake.injected += strcasestr(req, "\r\nX-Injected:") != NULL;
  pthread_mutex_unlock(&fake.lock);
  if (!strncmp(req, "POST /token ", 12)) {
    char grant[sizeof fake.token_answer];
    pthread_mutex_lock(&fake.lock); /* the next case may set another answer while this one is sent */
    memcpy(grant, fake.token_answer, sizeof grant);
    int tstatus = fake.token_status ? fake.token_status : 200;
    fake.token_requests++;
    pthread_mutex_unlock(&fake.lock);
    fake_answer(fd, tstatus, grant);
    goto out;
  }
  if (!strncmp(req, "POST /api/signorders ", 21)) {
    char auth[sizeof fake.last_auth] = "";
    const char *ah = strcasestr(req, "\r\nAuthorization: ");
    if (ah) {
      ah += 17;
      size_t al = strcspn(ah, "\r\n");
      if (al >= sizeof auth) al = sizeof auth - 1;
      memcpy(auth, ah, al);
      auth[al] = 0;
    }
    pthread_mutex_lock(&fake.lock);
    memcpy(fake.last_auth, auth, sizeof auth);
    /* fake.refused: tokens separated by spaces */
    char one[sizeof auth + 2], all[sizeof fake.refused + 2];
    snprintf(one, sizeof one, " %s ", strncmp(auth, "Bearer ", 7) ? "" : auth + 7);
    snprintf(all, sizeof all, " %s ", fake.refused);
    int refuse = fake.refused[0] && strlen(one) > 3 && strstr(all, one) != NULL;
    if (refuse) fake.orders++;
    pthread_mutex_unlock(&fake.lock);
    if (refuse) { /* the API's guard: one body for every refused token, before any handler */
      fake_answer(fd, 401, "{\"type\":\"about:blank\",\"status\":401,\"code\":\"invalid_token\",\"title\":\"Unauthorized\"}");
      goto out;
    }
  }
  if (!strncmp(req, "GET /api/keys ", 14)) {
    fake_answer(fd, 200, fake.keys_json);
    goto out;
  }
  pthread_mutex_lock(&fake.lock);
  int order = !strncmp(req, "POST /api/signorders ", 21);
  int nth = order ? fake.orders++ : 0;
  if (!order) fake.others++;
  enum fake_mode mode = fake.mode;
  char raw[sizeof fake.raw];
  size_t rawlen = fake.rawlen;
  memcpy(raw, fake.raw, rawlen);
  pthread_mutex_unlock(&fake.lock);
  if (!order) {
    fake_answer(fd, 404, "{\"code\":\"not_found\"}");
    goto out;
  }
  if (mode == FAKE_SLOW_THEN_CONFLICT && nth > 0) { /* the API's answer to a retry while its first request still signs */
    fake_answer(fd, 409, "{\"code\":\"conflict\",\"detail\":\"the first request with this Idempotency-Key is still signing\"}");
    goto out;
  }
  if (mode == FAKE_SILENT || mode == FAKE_SLOW_THEN_CONFLICT) {
    while (recv(fd, req, sizeof req, 0) > 0) {} /* until the module gives up */
    goto out;
  }
  if (mode == FAKE_RAW) {
    fake_send(fd, raw, rawlen);
    goto out;
  }
  if (mode == FAKE_HUGE) {
    const char *head = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 6291456\r\n\r\n";
    fake_send(fd, head, strlen(head));
    static const char chunk[65536] = {' '};
    for (int i = 0; i < 96; i++) fake_send(fd, chunk, sizeof chunk);
    goto out;
  }
  if (mode == FAKE_EXPIRED_THEN_SIGN && nth == 0) {
    fake_answer(fd, 503, "{\"code\":\"reservation_expired\"}");
    goto out;
  }
  if (mode == FAKE_SLOW) usleep(300 * 1000); /* then signs */
  char *hex = fake_signature(body, mode == FAKE_OTHER_KEY);
  if (hex && mode == FAKE_GARBAGE) /* as long as a signature, any bytes */
    for (char *p = hex; *p; p++) *p = "0123456789abcdef"[(p - hex) * 7 % 16];
  char *ans = malloc(strlen(hex ? hex : "") + 64);
  sprintf(ans, "{\"keyid\":\"x\",\"result\":\"%s\"}", hex ? hex : "");
  fake_answer(fd, 201, ans);
  free(ans);
  free(hex);
out:
  shutdown(fd, SHUT_WR);
  close(fd);
  pthread_mutex_lock(&fake.lock);
  fake.conns--;
  pthread_mutex_unlock(&fake.lock);
  return NULL;
}

/* Teardown: the connection threads are detached; what they answer from is freed only after the last one ended. */
static void fake_wait_conns(void) {
  for (int i = 0; i < 1000; i++) {
    pthread_mutex_lock(&fake.lock);
    int n = fake.conns;
    pthread_mutex_unlock(&fake.lock);
    if (!n) return;
    usleep(10000);
  }
}

static void *fake_accept(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(fake.fd, NULL, NULL);
    if (c < 0) return NULL;
    pthread_mutex_lock(&fake.lock);
    fake.conns++;
    pthread_mutex_unlock(&fake.lock);
    pthread_t t;
    pthread_create(&t, NULL, fake_conn, (void *)(intptr_t)c);
    pthread_detach(t);
  }
}

static void fake_set(enum fake_mode mode, const char *raw) {
  pthread_mutex_lock(&fake.lock);
  fake.mode = mode;
  fake.rawlen = raw ? strlen(raw) : 0;
  if (raw) memcpy(fake.raw, raw, fake.rawlen);
  fake.orders = fake.others = 0;
  pthread_mutex_unlock(&fake.lock);
}

static int fake_orders(void) {
  pthread_mutex_lock(&fake.lock);
  int n = fake.orders;
  pthread_mutex_unlock(&fake.lock);
  return n;
}

static EVP_PKEY *read_key(const char *name) {
  char path[200];
  snprintf(path, sizeof path, "%s/%s.key", tmpdir_, name);
  FILE *fp = fopen(path, "r");
  EVP_PKEY *k = fp ? PEM_read_PrivateKey(fp, NULL, NULL, NULL) : NULL;
  if (fp) fclose(fp);
  return k;
}

static CK_OBJECT_HANDLE object(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const char *id) {
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)id, strlen(id)}};
  CK_OBJECT_HANDLE o = 0;
  CK_ULONG n = 0;
  if (f->C_FindObjectsInit(h, t, 2) != CKR_OK) return 0;
  f->C_FindObjects(h, &o, 1, &n);
  f->C_FindObjectsFinal(h);
  return n == 1 ? o : 0;
}

/* C_SignInit + C_Sign with a buffer of `cap` bytes prefilled with 0xAA. */
static CK_RV sign_once(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key, CK_MECHANISM *m, const void *data, size_t len, unsigned char *sig,
                       CK_ULONG *siglen) {
  CK_RV rv = f->C_SignInit(h, m, key);
  if (rv != CKR_OK) return rv;
  memset(sig, 0xAA, *siglen);
  return f->C_Sign(h, (CK_BYTE_PTR)data, len, sig, siglen);
}

static int all_aa(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0xAA) return 0;
  return 1;
}

struct signer {
  CK_OBJECT_HANDLE key;
  int fails;
};

static void *sign_many(void *arg) {
  struct signer *s = arg;
  CK_SESSION_HANDLE h;
  if (f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) != CKR_OK) {
    s->fails = 100;
    return NULL;
  }
  for (int i = 0; i < 10; i++) {
    unsigned char sig[64];
    CK_ULONG sl = sizeof sig;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    char msg[32];
    snprintf(msg, sizeof msg, "thread message %d", i);
    if (sign_once(h, s->key, &m, msg, strlen(msg), sig, &sl) != CKR_OK || sl != 64) s->fails++;
    else {
      CK_MECHANISM v = {CKM_ECDSA_SHA256, NULL, 0};
      if (f->C_VerifyInit(h, &v, s->key + 1) != CKR_OK || f->C_Verify(h, (CK_BYTE_PTR)msg, strlen(msg), sig, sl) != CKR_OK) s->fails++;
    }
  }
  f->C_CloseSession(h);
  return NULL;
}

struct closing {
  CK_SESSION_HANDLE h;
  CK_OBJECT_HANDLE key;
  CK_RV rv;
};

static void *sign_closing(void *arg) {
  struct closing *c = arg;
  unsigned char sig[64];
  CK_ULONG sl = sizeof sig;
  CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
  c->rv = sign_once(c->h, c->key, &m, "x", 1, sig, &sl);
  return NULL;
}

static void http_answer(char *out, size_t outsz, int status, const char *extra_headers, const char *body) {
  snprintf(out, outsz, "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status, extra_headers,
           strlen(body), body);
}

static void test_hostile_keyserver(void) {
  snprintf(tmpdir_, sizeof tmpdir_, "/tmp/ks-p11-fake-XXXXXX");
  if (!mkdtemp(tmpdir_)) return;
  char *pems[3] = {certificate("ec", "EC -pkeyopt ec_paramgen_curve:P-256"), certificate("rsa", "RSA -pkeyopt rsa_keygen_bits:2048"),
                   certificate("ed", "ED25519")};
  free(sh("cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null", tmpdir_));
  fake.ec = read_key("ec");
  fake.ec_other = read_key("other");
  fake.rsa = read_key("rsa");
  fake.ed = read_key("ed");
  const char *ids[3] = {"fw-ec", "fw-rsa", "fw-ed"}, *infos[3] = {"FW EC-P256 SHA-256", "FW RSA-2048 SHA-256", "FW Ed25519 SHA-512"};
  size_t cap = 64;
  for (int i = 0; i < 3; i++) cap += 2 * strlen(pems[i] ? pems[i] : "") + 200;
  fake.keys_json = calloc(1, cap);
  strcat(fake.keys_json, "[");
  for (int i = 0; i < 3; i++) {
    char *esc = json_escape_pem(pems[i] ? pems[i] : "");
    sprintf(fake.keys_json + strlen(fake.keys_json), "%s{\"keyid\":\"%s\",\"keyinfo\":\"%s\",\"certificate\":\"%s\"}", i ? "," : "", ids[i],
            infos[i], esc);
    free(esc);
    free(pems[i]);
  }
  strcat(fake.keys_json, "]");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  fake.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bind(fake.fd, (struct sockaddr *)&a, sizeof a);
  listen(fake.fd, 64);
  getsockname(fake.fd, (struct sockaddr *)&a, &al);
  pthread_t acceptor;
  pthread_create(&acceptor, NULL, fake_accept, NULL);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
  setenv("KEYSERVER_URL", url, 1);
  setenv("KEYSERVER_OPERATION_ID", "0b9f4b1e-6c1d-4f7e-9a51-3f5e8d2c7a10", 1);
  setenv("KEYSERVER_PKCS11_TIMEOUT", "1", 1);
  setenv("KEYSERVER_PKCS11_EDDSA", "on", 1);
  setenv("KEYSERVER_TOKEN", "not-a-real-token", 1);
  CK_SESSION_HANDLE h = 0;
  CK_OBJECT_HANDLE ec = 0, ecpub = 0, rsa = 0, ed = 0;
  TEST("ok the stand-in Keyserver's keys are the token's objects") {
    CHECK(f->C_Initialize(NULL) == CKR_OK, "init");
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) == CKR_OK, "open");
    ec = object(h, CKO_PRIVATE_KEY, "fw-ec");
    ecpub = object(h, CKO_PUBLIC_KEY, "fw-ec");
    rsa = object(h, CKO_PRIVATE_KEY, "fw-rsa");
    ed = object(h, CKO_PRIVATE_KEY, "fw-ed");
    CHECK(ec && ecpub && rsa && ed, "objects %lu %lu %lu %lu", ec, ecpub, rsa, ed);
  }
  const char *msg = "firmware image 4.5.6";
  char deep[4001];
  memset(deep, '[', 4000);
  deep[4000] = 0;
#define A(status, headers, body) status, headers, body, NULL
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
  CK_RSA_PKCS_PSS_PARAMS pss256 = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  struct {
    const char *name;
    enum fake_mode mode;
    int status;
    const char *headers, *body; /* FAKE_RAW: an answer made of these, or `raw` as it is */
    const char *raw;
    CK_RV want;
    int orders; /* sign orders the module sent (a lost answer is sent once more) */
  } answers[] = {
      {"ok a signature that verifies with the key's certificate", FAKE_SIGN, 0, NULL, NULL, NULL, CKR_OK, 1},
      {"ok 503 reservation_expired is sent once more under the same Idempotency-Key", FAKE_EXPIRED_THEN_SIGN, 0, NULL, NULL, NULL, CKR_OK, 2},
      {"fail a 201 with 64 bytes that are no signature: CKR_DEVICE_ERROR, never CKR_OK with garbage", FAKE_GARBAGE, 0, NULL, NULL, NULL, CKR_DEVICE_ERROR, 1},
      {"fail a 201 with a valid signature by another key: CKR_DEVICE_ERROR", FAKE_OTHER_KEY, 0, NULL, NULL, NULL, CKR_DEVICE_ERROR, 1},
      {"fail a 201 whose result is not hex", FAKE_RAW, A(201, "", "{\"result\":\"zz\"}"), CKR_DEVICE_ERROR, 1},
      {"fail a 201 whose result is a number", FAKE_RAW, A(201, "", "{\"result\":12}"), CKR_DEVICE_ERROR, 1},
      {"fail a 201 whose result holds a NUL", FAKE_RAW,
       A(201, "", "{\"result\":\"abab\\u0000abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab\"}"),
       CKR_DEVICE_ERROR, 1},
      {"fail a 201 without a body", FAKE_RAW, A(201, "", ""), CKR_DEVICE_ERROR, 1},
      {"fail a 201 that is not JSON", FAKE_RAW, A(201, "", "<html>signed</html>"), CKR_DEVICE_ERROR, 1},
      {"fail a 201 nested 4000 arrays deep", FAKE_RAW, A(201, "", deep), CKR_DEVICE_ERROR, 1},
      {"fail a 204", FAKE_RAW, A(204, "", ""), CKR_DEVICE_ERROR, 1},
      {"fail a 302 to another host is not followed: CKR_DEVICE_ERROR", FAKE_RAW,
       A(302, "Location: http://127.0.0.1:9/api/signorders\r\n", ""), CKR_DEVICE_ERROR, 1},
      {"fail a 307 with a policy problem code is still a redirect: CKR_DEVICE_ERROR", FAKE_RAW,
       A(307, "Location: /elsewhere\r\n", "{\"code\":\"usage_exhausted\"}"), CKR_DEVICE_ERROR, 1},
      {"fail 409 usage_exhausted is CKR_FUNCTION_REJECTED", FAKE_RAW, A(409, "", "{\"code\":\"usage_exhausted\"}"), CKR_FUNCTION_REJECTED, 1},
      {"fail 409 with a code the module does not know is CKR_FUNCTION_REJECTED", FAKE_RAW, A(409, "", "{\"code\":\"a_future_code\"}"),
       CKR_FUNCTION_REJECTED, 1},
      {"fail 409 whose code is not a string is CKR_FUNCTION_REJECTED", FAKE_RAW, A(409, "", "{\"code\":[\"usage_exhausted\"]}"),
       CKR_FUNCTION_REJECTED, 1},
      {"fail 403 key_not_in_operation is CKR_KEY_FUNCTION_NOT_PERMITTED", FAKE_RAW, A(403, "", "{\"code\":\"key_not_in_operation\"}"),
       CKR_KEY_FUNCTION_NOT_PERMITTED, 1},
      {"fail 401 (a ready token cannot be renewed) is CKR_USER_NOT_LOGGED_IN", FAKE_RAW, A(401, "", "{\"code\":\"invalid_token\"}"),
       CKR_USER_NOT_LOGGED_IN, 1},
      {"fail 413 payload_too_large is CKR_DATA_LEN_RANGE", FAKE_RAW, A(413, "", "{\"code\":\"payload_too_large\"}"), CKR_DATA_LEN_RANGE, 1},
      {"fail 500 with a policy problem code is CKR_DEVICE_ERROR (the status class wins)", FAKE_RAW,
       A(500, "", "{\"code\":\"usage_exhausted\"}"), CKR_DEVICE_ERROR, 1},
      {"fail 502 from a proxy with an HTML body is CKR_DEVICE_ERROR", FAKE_RAW, A(502, "Content-Type: text/html\r\n", "<h1>Bad Gateway</h1>"),
       CKR_DEVICE_ERROR, 1},
      {"fail 429 rate_limited is CKR_DEVICE_ERROR", FAKE_RAW, A(429, "Retry-After: 1\r\n", "{\"code\":\"rate_limited\"}"), CKR_DEVICE_ERROR, 1},
      {"fail a body cut short of its Content-Length (sent once more, then CKR_DEVICE_ERROR)", FAKE_RAW, 0, NULL, NULL,
       "HTTP/1.1 201 Created\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{\"result\":\"ab", CKR_DEVICE_ERROR, 2},
      {"fail a Content-Length of 2^63 with a short body", FAKE_RAW, 0, NULL, NULL, "HTTP/1.1 201 Created\r\nContent-Length: 9223372036854775807\r\n\r\n{}",
       CKR_DEVICE_ERROR, 2},
      {"fail a body over 4 MiB (sent once more, then CKR_DEVICE_ERROR)", FAKE_HUGE, 0, NULL, NULL, NULL, CKR_DEVICE_ERROR, 2},
      {"fail a Keyserver that never answers: CKR_DEVICE_ERROR within the timeout", FAKE_SILENT, 0, NULL, NULL, NULL, CKR_DEVICE_ERROR, 2},
      {"fail a slow Keyserver: the retry meets 409 conflict (first request still signing), CKR_DEVICE_ERROR not a policy refusal",
       FAKE_SLOW_THEN_CONFLICT, 0, NULL, NULL, NULL, CKR_DEVICE_ERROR, 2},
  };
  for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
    TEST(answers[i].name) {
      char raw[8192];
      if (answers[i].status) http_answer(raw, sizeof raw, answers[i].status, answers[i].headers, answers[i].body);
      fake_set(answers[i].mode, answers[i].status ? raw : answers[i].raw);
      unsigned char sig[80];
      CK_ULONG sl = sizeof sig;
      time_t t0 = time(NULL);
      CK_RV rv = sign_once(h, ec, &ecdsa, msg, strlen(msg), sig, &sl);
      CHECK(rv == answers[i].want, "got %s want %s", ks_rv_name(rv), ks_rv_name(answers[i].want));
      CHECK(fake_orders() == answers[i].orders, "%d sign orders", fake_orders());
      CHECK(time(NULL) - t0 <= 5 + time_slack(), "took %ld s", (long)(time(NULL) - t0));
      if (rv == CKR_OK) {
        CHECK(sl == 64, "length %lu", sl);
        CHECK(f->C_VerifyInit(h, &ecdsa, ecpub) == CKR_OK && f->C_Verify(h, (CK_BYTE_PTR)msg, strlen(msg), sig, sl) == CKR_OK, "verify");
      } else {
        CHECK(all_aa(sig, sizeof sig), "the output buffer was written");
      }
      /* Whatever the answer, the operation is over. */
      CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_OPERATION_NOT_INITIALIZED, "operation still active");
    }
  }
#undef A
  struct {
    const char *name;
    CK_OBJECT_HANDLE *key;
    CK_MECHANISM m;
    enum fake_mode mode;
    CK_RV want;
    CK_ULONG len;
  } kinds[] = {
      {"ok CKM_SHA256_RSA_PKCS: the Keyserver's signature is checked and returned", &rsa, {CKM_SHA256_RSA_PKCS, NULL, 0}, FAKE_SIGN, CKR_OK, 256},
      {"ok CKM_SHA256_RSA_PKCS_PSS", &rsa, {CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof pss256}, FAKE_SIGN, CKR_OK, 256},
      {"fail CKM_SHA256_RSA_PKCS_PSS with 256 bytes that are no signature", &rsa, {CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof pss256}, FAKE_GARBAGE,
       CKR_DEVICE_ERROR, 256},
      {"ok CKM_EDDSA: a message order, its signature checked", &ed, {CKM_EDDSA, NULL, 0}, FAKE_SIGN, CKR_OK, 64},
      {"fail CKM_EDDSA with 64 bytes that are no signature", &ed, {CKM_EDDSA, NULL, 0}, FAKE_GARBAGE, CKR_DEVICE_ERROR, 64},
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    TEST(kinds[i].name) {
      fake_set(kinds[i].mode, NULL);
      unsigned char sig[512];
      CK_ULONG sl = sizeof sig;
      CK_RV rv = sign_once(h, *kinds[i].key, &kinds[i].m, msg, strlen(msg), sig, &sl);
      CHECK(rv == kinds[i].want, "got %s want %s", ks_rv_name(rv), ks_rv_name(kinds[i].want));
      if (rv == CKR_OK) CHECK(sl == kinds[i].len, "length %lu", sl);
      else CHECK(all_aa(sig, sizeof sig), "the output buffer was written");
    }
  }
  /* ---- surface 2: the caller ---- */
  TEST("ok C_Sign length rules: NULL asks the length, a short buffer is CKR_BUFFER_TOO_SMALL, neither asks the Keyserver nor ends the operation") {
    fake_set(FAKE_SIGN, NULL);
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK, "init");
    CK_ULONG sl = 0;
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), NULL, &sl) == CKR_OK && sl == 64, "length query %lu", sl);
    unsigned char sig[64];
    sl = 63;
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_BUFFER_TOO_SMALL && sl == 64, "short buffer %lu", sl);
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OPERATION_ACTIVE, "a second C_SignInit");
    CHECK(fake_orders() == 0, "asked the Keyserver");
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_OK && sl == 64, "sign");
    CHECK(fake_orders() == 1, "%d orders", fake_orders());
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_OPERATION_NOT_INITIALIZED, "ended");
    CHECK(f->C_SignFinal(h, sig, &sl) == CKR_OPERATION_NOT_INITIALIZED, "final without init");
    CHECK(f->C_SignUpdate(h, (CK_BYTE_PTR)msg, 1) == CKR_OPERATION_NOT_INITIALIZED, "update without init");
  }
  TEST("ok C_SignUpdate then C_SignFinal; C_Sign cannot end a multi-part signature") {
    fake_set(FAKE_SIGN, NULL);
    unsigned char sig[64];
    CK_ULONG sl = sizeof sig;
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK, "init");
    CHECK(f->C_SignUpdate(h, (CK_BYTE_PTR)msg, 4) == CKR_OK && f->C_SignUpdate(h, (CK_BYTE_PTR)msg + 4, strlen(msg) - 4) == CKR_OK, "update");
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_OPERATION_ACTIVE, "C_Sign in a multi-part signature");
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK, "init again");
    CHECK(f->C_SignUpdate(h, (CK_BYTE_PTR)msg, 4) == CKR_OK && f->C_SignUpdate(h, (CK_BYTE_PTR)msg + 4, strlen(msg) - 4) == CKR_OK, "update");
    sl = 0;
    CHECK(f->C_SignFinal(h, NULL, &sl) == CKR_OK && sl == 64, "length");
    CHECK(f->C_SignFinal(h, sig, &sl) == CKR_OK, "final");
    CHECK(f->C_VerifyInit(h, &ecdsa, ecpub) == CKR_OK && f->C_Verify(h, (CK_BYTE_PTR)msg, strlen(msg), sig, sl) == CKR_OK, "verify");
    CHECK(fake_orders() == 1, "%d orders", fake_orders());
  }
  TEST("fail C_SignInit with a handle that is no private key, or no object, or a bogus mechanism") {
    CHECK(f->C_SignInit(h, &ecdsa, ecpub) == CKR_KEY_FUNCTION_NOT_PERMITTED, "public key");
    CHECK(f->C_SignInit(h, &ecdsa, ec + 2) == CKR_KEY_HANDLE_INVALID, "certificate");
    CHECK(f->C_SignInit(h, &ecdsa, 0) == CKR_KEY_HANDLE_INVALID, "0");
    CHECK(f->C_SignInit(h, &ecdsa, (CK_OBJECT_HANDLE)-1) == CKR_KEY_HANDLE_INVALID, "~0");
    CHECK(f->C_SignInit(h, NULL, ec) == CKR_ARGUMENTS_BAD, "NULL mechanism");
    CHECK(f->C_SignInit(h + 1000, &ecdsa, ec) == CKR_SESSION_HANDLE_INVALID, "session");
    CK_RSA_PKCS_PSS_PARAMS bad[] = {{CKM_SHA256, CKG_MGF1_SHA1, 32}, {CKM_SHA_1, CKG_MGF1_SHA256, 32}, {CKM_SHA256, CKG_MGF1_SHA256, 0}};
    for (int i = 0; i < 3; i++)
      CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &bad[i], sizeof bad[i]}, rsa) == CKR_MECHANISM_PARAM_INVALID, "pss %d", i);
    CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof pss256 - 1}, rsa) == CKR_MECHANISM_PARAM_INVALID, "short");
    CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, NULL, sizeof pss256}, rsa) == CKR_MECHANISM_PARAM_INVALID, "NULL params");
    CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_ECDSA_SHA256, &pss256, sizeof pss256}, ec) == CKR_MECHANISM_PARAM_INVALID, "ECDSA with params");
    CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS, NULL, 0}, ec) == CKR_KEY_TYPE_INCONSISTENT, "RSA on EC");
    CHECK(f->C_SignInit(h, &(CK_MECHANISM){CKM_SHA_1, NULL, 0}, ec) == CKR_MECHANISM_INVALID, "digest mechanism");
  }
  TEST("ok C_GetAttributeValue length rules: NULL pValue gives the length, a short buffer CK_UNAVAILABLE_INFORMATION, the rest filled") {
    CK_BYTE point[80], params[16];
    CK_ATTRIBUTE t[] = {{CKA_EC_POINT, NULL, 0}, {CKA_EC_PARAMS, params, sizeof params}, {CKA_VALUE, params, sizeof params}};
    CHECK(f->C_GetAttributeValue(h, ecpub, t, 3) == CKR_ATTRIBUTE_TYPE_INVALID, "CKA_VALUE of a public key");
    CHECK(t[0].ulValueLen == 67 && t[1].ulValueLen == 10 && t[2].ulValueLen == CK_UNAVAILABLE_INFORMATION, "lengths %lu %lu", t[0].ulValueLen,
          t[1].ulValueLen);
    t[0].pValue = point;
    t[0].ulValueLen = 66;
    CHECK(f->C_GetAttributeValue(h, ecpub, t, 2) == CKR_BUFFER_TOO_SMALL && t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION, "short");
    t[0].ulValueLen = sizeof point;
    CHECK(f->C_GetAttributeValue(h, ecpub, t, 2) == CKR_OK && t[0].ulValueLen == 67 && point[0] == 0x04, "filled");
    CK_ATTRIBUTE secret = {CKA_VALUE, NULL, 0};
    CHECK(f->C_GetAttributeValue(h, ec, &secret, 1) == CKR_ATTRIBUTE_SENSITIVE && secret.ulValueLen == CK_UNAVAILABLE_INFORMATION, "sensitive");
    CHECK(f->C_GetAttributeValue(h, 0, t, 1) == CKR_OBJECT_HANDLE_INVALID, "object 0");
    CHECK(f->C_GetAttributeValue(h, 3 * 3 + 1, t, 1) == CKR_OBJECT_HANDLE_INVALID, "object past the end");
    CHECK(f->C_GetAttributeValue(h + 1000, ec, t, 1) == CKR_SESSION_HANDLE_INVALID, "session");
    CHECK(f->C_GetAttributeValue(h, ec, NULL, 1) == CKR_ARGUMENTS_BAD, "NULL template");
  }
  TEST("fail C_Login(CKU_CONTEXT_SPECIFIC) without an operation is CKR_OPERATION_NOT_INITIALIZED and logs nobody in") {
    CK_SESSION_INFO si;
    CHECK(f->C_Login(h, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR_PTR) "1234", 4) == CKR_OPERATION_NOT_INITIALIZED, "no operation");
    CHECK(f->C_GetSessionInfo(h, &si) == CKR_OK && si.state == CKS_RO_PUBLIC_SESSION, "state %lu", si.state);
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK, "init");
    CHECK(f->C_Login(h, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR_PTR) "1234", 4) == CKR_OK, "during a signature");
    CHECK(f->C_GetSessionInfo(h, &si) == CKR_OK && si.state == CKS_RO_PUBLIC_SESSION, "a context login changed the state: %lu", si.state);
    CK_ULONG sl = 0;
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), NULL, &sl) == CKR_OK && sl == 64, "still signing");
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OPERATION_ACTIVE, "still active");
    fake_set(FAKE_SIGN, NULL);
    unsigned char sig[64];
    CHECK(f->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_OK, "sign");
    CHECK(f->C_Login(h, CKU_USER, NULL, 0) == CKR_OK && f->C_GetSessionInfo(h, &si) == CKR_OK && si.state == CKS_RO_USER_FUNCTIONS, "user");
    CHECK(f->C_Logout(h) == CKR_OK, "logout");
  }
  TEST("fail C_SignUpdate and C_VerifyUpdate with a part length that wraps the 1 KiB bound of a raw mechanism ((CK_ULONG)-1 after "
       "one byte): CKR_DATA_LEN_RANGE, the operation ended") {
    fake_set(FAKE_SIGN, NULL);
    CK_MECHANISM raw = {CKM_ECDSA, NULL, 0};
    CHECK(f->C_SignInit(h, &raw, ec) == CKR_OK, "init");
    CHECK(f->C_SignUpdate(h, (CK_BYTE_PTR)msg, 1) == CKR_OK, "one byte");
    CHECK(f->C_SignUpdate(h, (CK_BYTE_PTR)msg, (CK_ULONG)-1) == CKR_DATA_LEN_RANGE, "wrapped length");
    CK_ULONG sl = 0;
    CHECK(f->C_SignFinal(h, NULL, &sl) == CKR_OPERATION_NOT_INITIALIZED, "not ended");
    CHECK(f->C_VerifyInit(h, &raw, ecpub) == CKR_OK, "verify init");
    CHECK(f->C_VerifyUpdate(h, (CK_BYTE_PTR)msg, 1) == CKR_OK, "one byte");
    CHECK(f->C_VerifyUpdate(h, (CK_BYTE_PTR)msg, (CK_ULONG)-1) == CKR_DATA_LEN_RANGE, "wrapped length");
    CHECK(f->C_VerifyFinal(h, (CK_BYTE_PTR)msg, 64) == CKR_OPERATION_NOT_INITIALIZED, "not ended");
    CHECK(fake_orders() == 0, "%d orders", fake_orders());
  }
  TEST("ok C_SignFinal length rules after C_SignUpdate: NULL asks the length, a short buffer is CKR_BUFFER_TOO_SMALL with it") {
    fake_set(FAKE_SIGN, NULL);
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK && f->C_SignUpdate(h, (CK_BYTE_PTR)msg, strlen(msg)) == CKR_OK, "init, update");
    unsigned char sig[64];
    CK_ULONG sl = 1;
    CHECK(f->C_SignFinal(h, sig, &sl) == CKR_BUFFER_TOO_SMALL && sl == 64, "short %lu", sl);
    sl = 0;
    CHECK(f->C_SignFinal(h, NULL, &sl) == CKR_OK && sl == 64, "query %lu", sl);
    CHECK(fake_orders() == 0, "asked the Keyserver");
    CHECK(f->C_SignFinal(h, sig, &sl) == CKR_OK && sl == 64, "final");
    CHECK(f->C_SignFinal(h, sig, &sl) == CKR_OPERATION_NOT_INITIALIZED, "ended");
    CHECK(f->C_SignFinal(h, sig, NULL) == CKR_OPERATION_NOT_INITIALIZED, "ended, NULL length");
  }
  TEST("ok C_SignInit and C_VerifyInit with a NULL mechanism end an active operation (PKCS#11 3.0), else CKR_ARGUMENTS_BAD") {
    fake_set(FAKE_SIGN, NULL);
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK && f->C_SignUpdate(h, (CK_BYTE_PTR)msg, 3) == CKR_OK, "init, update");
    CHECK(f->C_SignInit(h, NULL, 0) == CKR_OK, "cancel");
    CK_ULONG sl = 0;
    CHECK(f->C_SignFinal(h, NULL, &sl) == CKR_OPERATION_NOT_INITIALIZED, "still active");
    CHECK(f->C_SignInit(h, &ecdsa, ec) == CKR_OK, "a new one");
    CHECK(f->C_SignInit(h, NULL, 0) == CKR_OK, "cancel");
    CHECK(f->C_SignInit(h, NULL, 0) == CKR_ARGUMENTS_BAD, "nothing to cancel");
    CHECK(f->C_VerifyInit(h, &ecdsa, ecpub) == CKR_OK && f->C_VerifyInit(h, NULL, 0) == CKR_OK, "verify cancel");
    CHECK(f->C_VerifyFinal(h, (CK_BYTE_PTR)msg, 64) == CKR_OPERATION_NOT_INITIALIZED, "verify still active");
    CHECK(fake_orders() == 0, "%d orders", fake_orders());
  }
  TEST("ok every attribute has the size of its PKCS#11 type (CK_ULONG, CK_BBOOL, CK_MECHANISM_TYPE array) and its value") {
    struct {
      CK_OBJECT_HANDLE *o;
      CK_ATTRIBUTE_TYPE type;
      CK_ULONG size; /* 0: a whole number of CK_MECHANISM_TYPE */
      CK_ULONG value; /* for CK_ULONG and CK_BBOOL sizes */
    } attrs[] = {
        {&ec, CKA_CLASS, sizeof(CK_OBJECT_CLASS), CKO_PRIVATE_KEY},      {&ecpub, CKA_CLASS, sizeof(CK_OBJECT_CLASS), CKO_PUBLIC_KEY},
        {&ec, CKA_KEY_TYPE, sizeof(CK_KEY_TYPE), CKK_EC},                {&rsa, CKA_KEY_TYPE, sizeof(CK_KEY_TYPE), CKK_RSA},
        {&ed, CKA_KEY_TYPE, sizeof(CK_KEY_TYPE), CKK_EC_EDWARDS},        {&rsa, CKA_MODULUS_BITS, sizeof(CK_ULONG), 2048},
        {&ec, CKA_SIGN, sizeof(CK_BBOOL), CK_TRUE},                      {&ec, CKA_TOKEN, sizeof(CK_BBOOL), CK_TRUE},
        {&ec, CKA_PRIVATE, sizeof(CK_BBOOL), CK_FALSE},                  {&ec, CKA_SENSITIVE, sizeof(CK_BBOOL), CK_TRUE},
        {&ec, CKA_EXTRACTABLE, sizeof(CK_BBOOL), CK_FALSE},              {&ec, CKA_ALWAYS_AUTHENTICATE, sizeof(CK_BBOOL), CK_FALSE},
        {&ecpub, CKA_VERIFY, sizeof(CK_BBOOL), CK_TRUE},                 {&ec, CKA_ALLOWED_MECHANISMS, 0, 0},
        {&rsa, CKA_ALLOWED_MECHANISMS, 0, 0},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
      unsigned char v[64];
      memset(v, 0xaa, sizeof v);
      CK_ATTRIBUTE t = {attrs[i].type, v, sizeof v};
      CHECK(f->C_GetAttributeValue(h, *attrs[i].o, &t, 1) == CKR_OK, "attribute 0x%lx", attrs[i].type);
      if (!attrs[i].size) {
        CHECK(t.ulValueLen && t.ulValueLen % sizeof(CK_MECHANISM_TYPE) == 0, "0x%lx: %lu bytes", attrs[i].type, t.ulValueLen);
        continue;
      }
      CHECK(t.ulValueLen == attrs[i].size, "0x%lx: %lu bytes", attrs[i].type, t.ulValueLen);
      CK_ULONG got = 0;
      if (attrs[i].size == sizeof(CK_BBOOL)) got = v[0];
      else memcpy(&got, v, sizeof got);
      CHECK(got == attrs[i].value, "0x%lx: %lu", attrs[i].type, got);
    }
    CK_OBJECT_HANDLE cert = ec + 2;
    CK_CERTIFICATE_TYPE ct = 0;
    CK_ATTRIBUTE t = {CKA_CERTIFICATE_TYPE, &ct, sizeof ct};
    CHECK(f->C_GetAttributeValue(h, cert, &t, 1) == CKR_OK && t.ulValueLen == sizeof ct && ct == CKC_X_509, "certificate type");
  }
  TEST("fail C_GetObjectSize with a session that does not exist (CKR_SESSION_HANDLE_INVALID)") {
    CK_ULONG size = 0;
    CHECK(f->C_GetObjectSize(h + 1000, ec, &size) == CKR_SESSION_HANDLE_INVALID, "invalid session");
    CHECK(f->C_GetObjectSize(h, ec, &size) == CKR_OK, "valid session");
  }
  TEST("ok eight threads sign at once, each in its own session; every signature verifies") {
    fake_set(FAKE_SIGN, NULL);
    pthread_t t[8];
    struct signer s[8];
    for (int i = 0; i < 8; i++) {
      s[i] = (struct signer){ec, 0};
      pthread_create(&t[i], NULL, sign_many, &s[i]);
    }
    for (int i = 0; i < 8; i++) {
      pthread_join(t[i], NULL);
      CHECK(s[i].fails == 0, "thread %d: %d failures", i, s[i].fails);
    }
    /* 80, or a few more when a slow run (valgrind) passes the 1 s timeout and a lost answer is sent again. */
    CHECK(fake_orders() >= 80 && fake_orders() <= 160, "%d orders", fake_orders());
  }
  TEST("ok a session closed by another thread while its sign order runs is freed once, after the order") {
    fake_set(FAKE_SLOW, NULL);
    struct closing c = {0, ec, 0};
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &c.h) == CKR_OK, "open");
    pthread_t t;
    pthread_create(&t, NULL, sign_closing, &c);
    for (int i = 0; i < 500 && fake_orders() == 0; i++) usleep(10000);
    CHECK(f->C_CloseSession(c.h) == CKR_OK, "close while signing");
    CHECK(f->C_SignInit(c.h, &ecdsa, ec) == CKR_SESSION_HANDLE_INVALID, "closed");
    pthread_join(t, NULL);
    CHECK(c.rv == CKR_OK, "the order: %s", ks_rv_name(c.rv));
    CHECK(f->C_GetSessionInfo(c.h, &(CK_SESSION_INFO){0}) == CKR_SESSION_HANDLE_INVALID, "closed after the order");
  }
  TEST("ok C_Finalize while another thread's sign order runs waits for it: the order ends with its signature, nothing freed under it") {
    fake_set(FAKE_SLOW, NULL);
    int before = fake_orders();
    struct closing c = {0, ec, CKR_GENERAL_ERROR};
    CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &c.h) == CKR_OK, "open");
    pthread_t t;
    pthread_create(&t, NULL, sign_closing, &c);
    for (int i = 0; i < 500 && fake_orders() == before; i++) usleep(10000);
    CHECK(f->C_Finalize(NULL) == CKR_OK, "finalize while signing");
    CK_INFO info;
    CHECK(f->C_GetInfo(&info) == CKR_CRYPTOKI_NOT_INITIALIZED, "still initialized");
    pthread_join(t, NULL);
    CHECK(c.rv == CKR_OK, "the order: %s", ks_rv_name(c.rv));
    CHECK(f->C_Initialize(NULL) == CKR_OK, "initialize again");
    CHECK(f->C_GetSessionInfo(c.h, &(CK_SESSION_INFO){0}) == CKR_SESSION_HANDLE_INVALID, "the session survived");
  }
  f->C_CloseSession(h);
  f->C_Finalize(NULL);
  /* ---- a hostile token endpoint (client credentials with a secret) ---- */
  char token_url[80];
  snprintf(token_url, sizeof token_url, "%s/token", url);
  unsetenv("KEYSERVER_TOKEN");
  setenv("KEYSERVER_AUTH", "secret", 1);
  setenv("KEYSERVER_TOKEN_ENDPOINT", token_url, 1);
  setenv("KEYSERVER_CLIENT_SECRET", "not-a-real-secret", 1);
  struct {
    const char *name, *answer;
    CK_RV want;
  } grants[] = {
      {"ok a token endpoint's expires_in of 1e300 is taken as the default lifetime", "{\"access_token\":\"t0k3n\",\"expires_in\":1e300}", CKR_OK},
      {"ok a token endpoint's expires_in of -1e300 is taken as the default lifetime", "{\"access_token\":\"t0k3n\",\"expires_in\":-1e300}", CKR_OK},
      {"ok a token endpoint's expires_in as a string", "{\"access_token\":\"t0k3n\",\"expires_in\":\"3599\"}", CKR_OK},
      {"fail an access token holding CR LF (a header it would inject) is refused: CKR_USER_NOT_LOGGED_IN",
       "{\"access_token\":\"t0k3n\\r\\nX-Injected: 1\",\"expires_in\":3600}", CKR_USER_NOT_LOGGED_IN},
      {"fail an access token holding a space or a non-ASCII byte is refused", "{\"access_token\":\"t0k en\\u00e9\",\"expires_in\":3600}",
       CKR_USER_NOT_LOGGED_IN},
      {"fail an access token with a quote, a comma or a semicolon (visible ASCII, no RFC 6750 b64token) is refused",
       "{\"access_token\":\"t0k\\\"en,x;y\",\"expires_in\":3600}", CKR_USER_NOT_LOGGED_IN},
      {"fail an access token with '=' inside (padding only at its end) is refused", "{\"access_token\":\"a=b\",\"expires_in\":3600}",
       CKR_USER_NOT_LOGGED_IN},
      {"ok an access token that is a JWT with + / and padding", "{\"access_token\":\"eyJ0.eyJ1+/.c2ln==\",\"expires_in\":3600}", CKR_OK},
  };
  for (size_t i = 0; i < sizeof grants / sizeof grants[0]; i++) {
    TEST(grants[i].name) {
      pthread_mutex_lock(&fake.lock);
      snprintf(fake.token_answer, sizeof fake.token_answer, "%s", grants[i].answer);
      pthread_mutex_unlock(&fake.lock);
      fake_set(FAKE_SIGN, NULL);
      pthread_mutex_lock(&fake.lock);
      fake.injected = 0;
      pthread_mutex_unlock(&fake.lock);
      CHECK(f->C_Initialize(NULL) == CKR_OK, "init");
      CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) == CKR_OK, "open");
      CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
      CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
      CK_RV rv = f->C_FindObjectsInit(h, t, 1);
      if (rv == CKR_OK) {
        f->C_FindObjectsFinal(h);
        unsigned char sig[64];
        CK_ULONG sl = sizeof sig;
        rv = sign_once(h, ec, &ecdsa, msg, strlen(msg), sig, &sl);
      }
      CHECK(rv == grants[i].want, "got %s want %s", ks_rv_name(rv), ks_rv_name(grants[i].want));
      CHECK(fake.injected == 0, "a header was injected");
      f->C_CloseSession(h);
      f->C_Finalize(NULL);
    }
  }
  /* ---- ksctl's PKCE login (its token cache) and a 401 from the Keyserver ---- */
  unsetenv("KEYSERVER_CLIENT_SECRET");
  setenv("KEYSERVER_AUTH", "pkce", 1);
  setenv("KSCTL_CACHE_DIR", tmpdir_, 1);
  {
    struct ks_config pc;
    memset(&pc, 0, sizeof pc);
    pc.token_endpoint = token_url;
    pc.client_id = (char *)"c";
    pc.scope = (char *)"s";
    pc.cache_dir = tmpdir_;
    char cache[4200] = "";
    ks_ksctl_cache_file(&pc, cache, sizeof cache);
    const double day_ms = 86400e3;
    struct {
      const char *name;
      const char *access;   /* the cached access token */
      double ahead_ms;      /* its expiresAt, from now */
      const char *refused;  /* the tokens (separated by spaces) the Keyserver answers 401 invalid_token */
      int token_status;     /* the token endpoint's status (0: 200 with a fresh token) */
      const char *raw;      /* FAKE_RAW answer to sign orders instead of signing */
      CK_RV want;
      int orders, token_requests;
      const char *sent;     /* the last sign order's Authorization */
      const char *cached;   /* ksctl's cache file's accessToken afterwards */
    } logins[] = {
        {"ok ksctl's cached PKCE token is used as it is", "cached-ok", 3600e3, "", 0, NULL, CKR_OK, 1, 0, "Bearer cached-ok", "cached-ok"},
        {"ok a cached PKCE token the Keyserver refuses (401 invalid_token): refreshed once, the order sent once more, the cache updated",
         "revoked", 3600e3, "revoked", 0, NULL, CKR_OK, 2, 1, "Bearer fresh", "fresh"},
        {"fail the refresh is refused after a 401: CKR_USER_NOT_LOGGED_IN, the refused token dropped from ksctl's cache (the refresh "
         "token kept), never sent again by ksctl",
         "revoked", 3600e3, "revoked", 400, NULL, CKR_USER_NOT_LOGGED_IN, 1, 1, "Bearer revoked", ""},
        {"fail the fresh token is refused as well: CKR_USER_NOT_LOGGED_IN after two orders and one refresh (never a loop), dropped too",
         "revoked", 3600e3, "revoked fresh", 0, NULL, CKR_USER_NOT_LOGGED_IN, 2, 1, "Bearer fresh", ""},
        {"fail a 401 that is not invalid_token (a proxy's page): not renewed, not sent again, the cache kept", "cached-ok", 3600e3, "", 0,
         "HTTP/1.1 401 X\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\n<h1/>", CKR_USER_NOT_LOGGED_IN, 1, 0,
         "Bearer cached-ok", "cached-ok"},
        {"fail a cached token that expires more than a day ahead (ksctl caches a day at most) is not used: refreshed", "forever", 30 * day_ms,
         "", 0, NULL, CKR_OK, 1, 1, "Bearer fresh", "fresh"},
        {"fail a cached token with a character outside b64token (a quote) is never sent: refreshed", "cached\\\"x", 3600e3, "", 0, NULL, CKR_OK,
         1, 1, "Bearer fresh", "fresh"},
    };
    for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
      TEST(logins[i].name) {
        FILE *cf = fopen(cache, "w");
        if (cf) {
          fprintf(cf, "{\"accessToken\":\"%s\",\"expiresAt\":%.0f,\"refreshToken\":\"rt-old\"}", logins[i].access,
                  (double)time(NULL) * 1000.0 + logins[i].ahead_ms);
          fclose(cf);
        }
        chmod(cache, 0600);
        fake_set(logins[i].raw ? FAKE_RAW : FAKE_SIGN, logins[i].raw);
        pthread_mutex_lock(&fake.lock);
        snprintf(fake.token_answer, sizeof fake.token_answer, "%s",
                 logins[i].token_status ? "{\"error\":\"invalid_grant\"}" : "{\"access_token\":\"fresh\",\"expires_in\":3600}");
        fake.token_status = logins[i].token_status;
        fake.token_requests = 0;
        snprintf(fake.refused, sizeof fake.refused, "%s", logins[i].refused);
        fake.last_auth[0] = 0;
        pthread_mutex_unlock(&fake.lock);
        CHECK(f->C_Initialize(NULL) == CKR_OK, "init");
        CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) == CKR_OK, "open");
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
        CK_RV rv = f->C_FindObjectsInit(h, t, 1);
        if (rv == CKR_OK) {
          f->C_FindObjectsFinal(h);
          unsigned char sig[64];
          CK_ULONG sl = sizeof sig;
          rv = sign_once(h, ec, &ecdsa, msg, strlen(msg), sig, &sl);
        }
        pthread_mutex_lock(&fake.lock);
        int orders = fake.orders, treq = fake.token_requests;
        char sent[sizeof fake.last_auth];
        memcpy(sent, fake.last_auth, sizeof sent);
        pthread_mutex_unlock(&fake.lock);
        CHECK(rv == logins[i].want, "got %s want %s", ks_rv_name(rv), ks_rv_name(logins[i].want));
        CHECK(orders == logins[i].orders, "%d sign orders", orders);
        CHECK(treq == logins[i].token_requests, "%d token requests", treq);
        CHECK(!strcmp(sent, logins[i].sent), "sent %s", sent);
        char *access = NULL, *refresh = NULL;
        double expires = 0;
        CHECK(ks_read_ksctl_cache(cache, &access, &expires, &refresh) == 0, "ksctl's cache is no login any more");
        CHECK(access && !strcmp(access, logins[i].cached), "cached %s", access ? access : "(none)");
        CHECK(refresh && !strcmp(refresh, "rt-old"), "refresh token %s", refresh ? refresh : "(none)");
        /* What the module writes expires within a day (the cap); an untouched entry keeps its expiry. */
        if (access && strcmp(access, logins[i].access)) CHECK(expires <= ((double)time(NULL) + 86400) * 1000.0, "expiry %.0f", expires);
        free(access);
        free(refresh);
        f->C_CloseSession(h);
        f->C_Finalize(NULL);
      }
    }
    pthread_mutex_lock(&fake.lock);
    fake.token_status = 0;
    fake.refused[0] = 0;
    pthread_mutex_unlock(&fake.lock);
    unlink(cache);
  }
  unsetenv("KSCTL_CACHE_DIR");
  unsetenv("KEYSERVER_AUTH");
  unsetenv("KEYSERVER_TOKEN_ENDPOINT");
  unsetenv("KEYSERVER_CLIENT_SECRET");
  unsetenv("KEYSERVER_PKCS11_EDDSA");
  shutdown(fake.fd, SHUT_RDWR);
  close(fake.fd);
  pthread_join(acceptor, NULL);
  fake_wait_conns();
  EVP_PKEY_free(fake.ec);
  EVP_PKEY_free(fake.ec_other);
  EVP_PKEY_free(fake.rsa);
  EVP_PKEY_free(fake.ed);
  free(fake.keys_json);
  free(sh("rm -rf %s", tmpdir_));
}

/* ---- local verification (verify.c): signatures made by the openssl command ---- */

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  unsigned char *b = malloc(8192);
  *len = fread(b, 1, 8192, fp);
  fclose(fp);
  return b;
}

/* What C_VerifyInit + C_Verify do with a key: the plan, local hashing, the sign order input, then ks_verify. */
static CK_RV verify_as_token(const struct ks_key *k, CK_MECHANISM *m, const unsigned char *data, size_t len,
                             const unsigned char *sig, size_t siglen) {
  struct ks_mech_plan plan;
  char why[300];
  CK_RV rv = ks_mech_plan(k, m, &plan, why, sizeof why);
  if (rv != CKR_OK) return rv;
  unsigned char digest[EVP_MAX_MD_SIZE], input[256];
  unsigned int dl = 0;
  size_t inlen = 0;
  if (plan.hashes_locally) {
    const EVP_MD *md = plan.hash == KS_SHA384 ? EVP_sha384() : plan.hash == KS_SHA512 ? EVP_sha512() : EVP_sha256();
    EVP_Digest(data, len, digest, &dl, md, NULL);
    data = digest;
    len = dl;
  }
  rv = ks_mech_input(k, &plan, data, len, input, &inlen, why, sizeof why);
  return rv != CKR_OK ? rv : ks_verify(k, &plan, input, inlen, sig, siglen);
}

static void test_verify(void) {
  char saved[64];
  memcpy(saved, tmpdir_, sizeof saved);
  snprintf(tmpdir_, sizeof tmpdir_, "/tmp/ks-p11-verify-XXXXXX");
  if (!mkdtemp(tmpdir_)) return;
  struct {
    const char *name, *alg, *info;
  } kinds[] = {
      {"rsa", "RSA -pkeyopt rsa_keygen_bits:2048", "FW RSA-2048 SHA-256, 0 approver(s)"},
      {"p256", "EC -pkeyopt ec_paramgen_curve:P-256", "FW EC-P256 SHA-256, 0 approver(s)"},
      {"p384", "EC -pkeyopt ec_paramgen_curve:P-384", "FW EC-P384 SHA-384, 0 approver(s)"},
  };
  struct ks_keylist keys[3] = {{0}};
  for (size_t i = 0; i < 3; i++) {
    char *pem = certificate(kinds[i].name, kinds[i].alg);
    char *esc = json_escape_pem(pem ? pem : "");
    char *json = malloc(strlen(esc) + 400);
    sprintf(json, "[{\"keyid\":\"v-%s\",\"keyinfo\":\"%s\",\"certificate\":\"%s\"}]", kinds[i].name, kinds[i].info, esc);
    char err[200];
    if (ks_keys_parse(json, strlen(json), &keys[i], err, sizeof err) != 0) keys[i].n = 0;
    free(json);
    free(esc);
    free(pem);
  }
  const char *msg = "firmware 1.2.3 verified through the token\n";
  free(sh("cd %s && printf '%%s' '%s' > msg && printf 'another image' > other", tmpdir_, msg));
  CK_RSA_PKCS_PSS_PARAMS pss256 = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  struct {
    const char *name;
    int key;
    CK_MECHANISM m;
    const char *dgst, *sigopts; /* openssl dgst <dgst> -sign <key> <sigopts> -out sig msg */
    const char *data;    /* what is verified: "msg" or "other" */
    int ecdsa_raw;       /* convert openssl's DER ECDSA signature to PKCS#11's r||s */
    int flip;            /* flip one bit of the signature */
    size_t cut;          /* drop bytes from the end of the signature */
    CK_RV want;
  } cases[] = {
      {"ok CKM_SHA256_RSA_PKCS: openssl dgst -sha256 -sign", 0, {CKM_SHA256_RSA_PKCS, NULL, 0}, "-sha256", "", "msg", 0, 0, 0, CKR_OK},
      {"ok CKM_SHA256_RSA_PKCS_PSS: salt 32, MGF1-SHA256", 0, {CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof pss256},
       "-sha256", "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32", "msg", 0, 0, 0, CKR_OK},
      {"ok CKM_ECDSA_SHA256 on P-256 (r||s)", 1, {CKM_ECDSA_SHA256, NULL, 0}, "-sha256", "", "msg", 1, 0, 0, CKR_OK},
      {"ok CKM_ECDSA_SHA384 on P-384 (r||s)", 2, {CKM_ECDSA_SHA384, NULL, 0}, "-sha384", "", "msg", 1, 0, 0, CKR_OK},
      {"fail CKM_SHA256_RSA_PKCS over other data (CKR_SIGNATURE_INVALID)", 0, {CKM_SHA256_RSA_PKCS, NULL, 0}, "-sha256", "", "other", 0, 0, 0, CKR_SIGNATURE_INVALID},
      {"fail CKM_SHA256_RSA_PKCS with one bit flipped", 0, {CKM_SHA256_RSA_PKCS, NULL, 0}, "-sha256", "", "msg", 0, 1, 0, CKR_SIGNATURE_INVALID},
      {"fail a PSS signature checked as PKCS#1 v1.5", 0, {CKM_SHA256_RSA_PKCS, NULL, 0},
       "-sha256", "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32", "msg", 0, 0, 0, CKR_SIGNATURE_INVALID},
      {"fail a PSS signature with a 20-byte salt (the key's salt is 32)", 0, {CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof pss256},
       "-sha256", "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:20", "msg", 0, 0, 0, CKR_SIGNATURE_INVALID},
      {"fail CKM_ECDSA_SHA256 over other data", 1, {CKM_ECDSA_SHA256, NULL, 0}, "-sha256", "", "other", 1, 0, 0, CKR_SIGNATURE_INVALID},
      {"fail CKM_ECDSA_SHA256 with one bit of s flipped", 1, {CKM_ECDSA_SHA256, NULL, 0}, "-sha256", "", "msg", 1, 1, 0, CKR_SIGNATURE_INVALID},
      {"fail an RSA signature one byte short (CKR_SIGNATURE_LEN_RANGE)", 0, {CKM_SHA256_RSA_PKCS, NULL, 0}, "-sha256", "", "msg", 0, 0, 1, CKR_SIGNATURE_LEN_RANGE},
      {"fail openssl's DER ECDSA signature where r||s is due (CKR_SIGNATURE_LEN_RANGE)", 1, {CKM_ECDSA_SHA256, NULL, 0}, "-sha256", "", "msg", 0, 0, 0, CKR_SIGNATURE_LEN_RANGE},
      {"fail CKM_SHA384_RSA_PKCS on a SHA-256 key: the key's mechanisms only (CKR_MECHANISM_INVALID)", 0, {CKM_SHA384_RSA_PKCS, NULL, 0}, "-sha384", "", "msg", 0, 0, 0, CKR_MECHANISM_INVALID},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TEST(cases[i].name) {
      const struct ks_key *k = keys[cases[i].key].n == 1 ? &keys[cases[i].key].keys[0] : NULL;
      CHECK(k, "openssl made no %s key", kinds[cases[i].key].name);
      if (!k) continue;
      free(sh("cd %s && rm -f sig && openssl dgst %s -sign %s.key %s -out sig msg 2>/dev/null", tmpdir_, cases[i].dgst,
              kinds[cases[i].key].name, cases[i].sigopts));
      char path[200];
      size_t siglen = 0, datalen = 0;
      snprintf(path, sizeof path, "%s/sig", tmpdir_);
      unsigned char *sig = read_all(path, &siglen);
      snprintf(path, sizeof path, "%s/%s", tmpdir_, cases[i].data);
      unsigned char *data = read_all(path, &datalen);
      CHECK(sig && siglen && data, "openssl made no signature");
      if (!sig || !data) {
        free(sig);
        free(data);
        continue;
      }
      if (cases[i].ecdsa_raw) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        size_t half = k->sig_len / 2;
        CHECK(es, "openssl's ECDSA signature does not parse");
        if (es) {
          BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)half);
          BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, (int)half);
          siglen = 2 * half;
          ECDSA_SIG_free(es);
        }
      }
      if (cases[i].flip) sig[siglen - 1] ^= 0x01;
      siglen -= cases[i].cut;
      ERR_clear_error();
      CK_RV rv = verify_as_token(k, &cases[i].m, data, datalen, sig, siglen);
      CHECK(rv == cases[i].want, "got %s want %s", ks_rv_name(rv), ks_rv_name(cases[i].want));
      /* The module runs inside OpenSSL programs: a refused signature leaves nothing on their error queue. */
      CHECK(ERR_peek_error() == 0, "OpenSSL error queue not empty");
      free(sig);
      free(data);
    }
  }
  TEST("fail an Ed25519 key verifies nothing here (CKR_KEY_FUNCTION_NOT_PERMITTED)") {
    struct ks_key ed = key_of(KS_KEY_ED25519, KS_SHA512);
    struct ks_mech_plan plan = {CKM_EDDSA, 0, KS_SHA512, "none", "raw"};
    unsigned char sig[64] = {0}, in[32] = {0};
    CHECK(ks_verify(&ed, &plan, in, sizeof in, sig, sizeof sig) == CKR_KEY_FUNCTION_NOT_PERMITTED, "rv");
  }
  for (size_t i = 0; i < 3; i++) ks_keys_free(&keys[i]);
  free(sh("rm -rf %s", tmpdir_));
  memcpy(tmpdir_, saved, sizeof saved);
}

int main(void) {
  const char *seed = getenv("KS_SEED");
  rng_state = seed ? strtoull(seed, NULL, 0) : 0x5eed1234abcdULL;
  if (!rng_state) rng_state = 1;
  ks_log_open("none", NULL);
  test_mech_plan();
  test_digestinfo();
  test_mech_input();
  test_problems();
  test_config();
  test_log();
  test_tokens();
  test_keys();
  test_verify();
  test_api();
  test_hostile_keyserver();
  printf("\npkcs11-module: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
