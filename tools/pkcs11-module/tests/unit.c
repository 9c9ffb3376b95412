/* Unit tests of keyserver-pkcs11: the logic that needs no Keyserver (mechanism plans, DigestInfo, problem
 * codes, configuration, the key list parser, the PKCS#11 session table under threads). Certificates are made
 * by the openssl command and public values compared with what it prints, signatures made by it are verified
 * locally (C_Verify); hostile inputs come from a seeded
 * generator (same seed every run, KS_SEED to change it). The Keyserver itself is tested end to end in
 * apps/keyserver-e2e/src/pkcs11-module.spec.ts. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
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
  TEST("ok C_Initialize with CKF_OS_LOCKING_OK; a second one is CKR_CRYPTOKI_ALREADY_INITIALIZED") {
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.flags = CKF_OS_LOCKING_OK;
    CHECK(f->C_Initialize(&a) == CKR_OK, "init");
    CHECK(f->C_Initialize(NULL) == CKR_CRYPTOKI_ALREADY_INITIALIZED, "twice");
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
    CHECK(time(NULL) - t0 <= 6, "took %ld s", (long)(time(NULL) - t0));
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
  test_tokens();
  test_keys();
  test_verify();
  test_api();
  printf("\npkcs11-module: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
