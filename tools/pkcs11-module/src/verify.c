/* C_Verify for the token's public-key objects (CKA_VERIFY): checked here with OpenSSL and the public key of the
 * key's certificate, nothing asked of the Keyserver. Tools verify through the token when handed a token public
 * key (OpenSSL's pkcs11-provider with `pkcs11:…;type=public`, SunPKCS11); without it a valid signature read as a
 * failure. The mechanisms and their parameters are exactly those the key signs with (ks_mech_plan).
 *
 * The checks run in a library context of the module's own with only OpenSSL's default provider: in a process
 * that loaded pkcs11-provider, the application's context would hand our own RSA key back to that provider, which
 * verifies through this token again (C_Verify -> EVP_PKEY_verify -> C_Verify ..., until the sessions run out). */
#include <pthread.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <string.h>

#include "ks.h"

static OSSL_LIB_CTX *g_libctx;
static pthread_once_t g_libctx_once = PTHREAD_ONCE_INIT;

/* Lives as long as the process (C_Finalize may be followed by another C_Initialize). */
static void libctx_init(void) {
  OSSL_LIB_CTX *c = OSSL_LIB_CTX_new();
  if (c && OSSL_PROVIDER_load(c, "default")) g_libctx = c;
  else OSSL_LIB_CTX_free(c);
}

static const EVP_MD *md_of(enum ks_hash h) { return h == KS_SHA384 ? EVP_sha384() : h == KS_SHA512 ? EVP_sha512() : EVP_sha256(); }

/* r || s (PKCS#11's ECDSA signature) as the DER ECDSA-Sig-Value OpenSSL verifies; NULL if it cannot be made. */
static unsigned char *ecdsa_der(const unsigned char *sig, size_t siglen, int *derlen) {
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, (int)(siglen / 2), NULL), *s = BN_bin2bn(sig + siglen / 2, (int)(siglen / 2), NULL);
  unsigned char *der = NULL;
  if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
    r = s = NULL; /* owned by es now */
    *derlen = i2d_ECDSA_SIG(es, &der);
    if (*derlen <= 0) der = NULL;
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  return der;
}

CK_RV ks_verify(const struct ks_key *k, const struct ks_mech_plan *plan, const unsigned char *input, size_t inlen,
                const unsigned char *sig, size_t siglen) {
  /* Ed25519: only the sign path's check of a message order's answer (C_VerifyInit refuses Ed25519 keys). */
  if (k->type == KS_KEY_ED25519 && !plan->message) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  /* PKCS#11: a signature of the wrong length is CKR_SIGNATURE_LEN_RANGE, not merely invalid. */
  if (siglen != k->sig_len) return CKR_SIGNATURE_LEN_RANGE;
  /* The module runs inside OpenSSL programs: what fails here must not stay on their error queue. */
  ERR_set_mark();
  pthread_once(&g_libctx_once, libctx_init);
  const unsigned char *p = k->spki;
  EVP_PKEY *pkey = g_libctx ? d2i_PUBKEY_ex(NULL, &p, (long)k->spki_len, g_libctx, NULL) : NULL;
  EVP_PKEY_CTX *ctx = pkey ? EVP_PKEY_CTX_new_from_pkey(g_libctx, pkey, NULL) : NULL;
  CK_RV rv = CKR_FUNCTION_FAILED;
  unsigned char *der = NULL;
  if (k->type == KS_KEY_ED25519) {
    /* PureEdDSA over the whole message: a one-shot EVP_DigestVerify without a digest. */
    EVP_MD_CTX *md = pkey ? EVP_MD_CTX_new() : NULL;
    if (md && EVP_DigestVerifyInit_ex(md, NULL, NULL, g_libctx, NULL, pkey, NULL) == 1)
      rv = EVP_DigestVerify(md, sig, siglen, input, inlen) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
    EVP_MD_CTX_free(md);
    goto done;
  }
  if (!ctx || EVP_PKEY_verify_init(ctx) != 1) goto done;
  if (k->type == KS_KEY_EC) {
    int derlen = 0;
    if (!(der = ecdsa_der(sig, siglen, &derlen))) goto done;
    /* The input is the digest (CKM_ECDSA); no md set, so OpenSSL checks exactly these bytes. */
    rv = EVP_PKEY_verify(ctx, der, (size_t)derlen, input, inlen) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
  } else if (!strcmp(plan->padding, "pss")) {
    const EVP_MD *md = md_of(plan->hash);
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1 || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)ks_hash_len(plan->hash)) != 1)
      goto done;
    rv = EVP_PKEY_verify(ctx, sig, siglen, input, inlen) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
  } else {
    /* PKCS#1 v1.5 without an md: OpenSSL compares the recovered block with the DigestInfo given. */
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1) goto done;
    rv = EVP_PKEY_verify(ctx, sig, siglen, input, inlen) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
  }
done:
  ERR_pop_to_mark();
  OPENSSL_free(der);
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return rv;
}
