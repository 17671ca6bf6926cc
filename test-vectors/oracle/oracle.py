#!/usr/bin/env python3
"""Independent reference implementation for the ykt-crypto cross-checks.

Reads one JSON array of requests from stdin and writes one JSON array of responses to stdout,
in the same order. A request is an object with "op" and hex-string parameters; a response
holds upper-case hex fields, a boolean "ok" for verifications, or "error" when the request
could not be carried out (malformed input, failed SM2 integrity check).

Everything is written from the specifications (pboc-spec.md section 5, the ykt SM4 profile v1
of ARCHITECTURE.md, GB/T 32918, FIPS 186-5) on top of third-party primitives only: single DES
from pycryptodome (3DES EDE is composed here because pycryptodome's DES3 refuses degenerate
keys), SM4, AES, CMAC and P-256 ECDSA from `cryptography`, SM2 and SM3 from gmssl.
"""

import json
import sys

from Crypto.Cipher import DES
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from gmssl import sm2, sm3

KEY_LENGTHS = {"des": 8, "3des": 16, "sm4": 16, "aes128": 16, "aes256": 32}


def hexu(data):
    """Upper-case hex of bytes."""
    return data.hex().upper()


def param(req, name):
    """The bytes of hex parameter `name`."""
    return bytes.fromhex(req[name])


def xor(a, b):
    """Bytewise XOR of two equal-length byte strings."""
    return bytes(x ^ y for x, y in zip(a, b))


def des(key):
    """Single-DES block encryption and decryption under an 8-byte key."""
    cipher = DES.new(key, DES.MODE_ECB)
    return cipher.encrypt, cipher.decrypt


class BlockCipher:
    """One key of one algorithm, encrypting single blocks with `encrypt`."""

    def __init__(self, alg, key):
        if KEY_LENGTHS.get(alg) != len(key):
            raise ValueError(f"bad {alg} key length {len(key)}")
        self.block_len = 8 if alg in ("des", "3des") else 16
        if alg == "des":
            self.encrypt, _ = des(key)
        elif alg == "3des":
            # Two-key EDE: E(K1, D(K2, E(K1, block))).
            e1, _ = des(key[:8])
            _, d2 = des(key[8:])
            self.encrypt = lambda block: e1(d2(e1(block)))
        else:
            algorithm = algorithms.SM4(key) if alg == "sm4" else algorithms.AES(key)
            self.encrypt = Cipher(algorithm, modes.ECB()).encryptor().update

    def ecb(self, data):
        """ECB encryption of whole blocks."""
        n = self.block_len
        if len(data) % n:
            raise ValueError("ECB data is not whole blocks")
        return b"".join(self.encrypt(data[i : i + n]) for i in range(0, len(data), n))


def pad_80(data, n):
    """ISO/IEC 9797-1 padding method 2: 80 then 00 up to a multiple of n, always added."""
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % n)


def cbc_last(encrypt, iv, data, n):
    """The last block of CBC encryption of whole blocks."""
    state = iv
    for i in range(0, len(data), n):
        state = encrypt(xor(state, data[i : i + n]))
    return state


def pboc_mac(alg, key, iv, data):
    """The full last block of the PBOC MAC (pboc-spec 5.3, ykt SM4 profile v1)."""
    cipher = BlockCipher(alg, key)
    n = cipher.block_len
    if len(iv) != n:
        raise ValueError("IV is not one block")
    if alg != "3des":
        return cbc_last(cipher.encrypt, iv, pad_80(data, n), n)
    # ISO/IEC 9797-1 MAC algorithm 3: single-DES CBC under the left half, then D(right), E(left).
    encrypt_left, _ = des(key[:8])
    _, decrypt_right = des(key[8:])
    return encrypt_left(decrypt_right(cbc_last(encrypt_left, iv, pad_80(data, 8), 8)))


def cmac(alg, key, data):
    algorithm = {"sm4": algorithms.SM4, "aes128": algorithms.AES, "aes256": algorithms.AES}[alg]
    mac = CMAC(algorithm(key))
    mac.update(data)
    return mac.finalize()


def pboc_alg(key):
    """PBOC keys: 8 bytes are single DES, 16 bytes two-key 3DES."""
    return {8: "des", 16: "3des"}[len(key)]


def diversify(profile, key, factor):
    """One level (pboc-spec 5.1): PBOC E(K,F)||E(K,~F); SM4 v1 SM4(K, F||~F)."""
    block = factor + bytes(b ^ 0xFF for b in factor)
    if profile == "pboc":
        return BlockCipher(pboc_alg(key), key).ecb(block)
    if profile == "sm4":
        return BlockCipher("sm4", key).encrypt(block)
    raise ValueError(f"unknown profile {profile}")


def session_key(profile, key, data8):
    """Session key (pboc-spec 5.2): PBOC E(K, input); SM4 v1 SM4(K, input || 80 00..)."""
    if profile == "pboc":
        return BlockCipher(pboc_alg(key), key).encrypt(data8)
    return BlockCipher("sm4", key).encrypt(data8 + b"\x80" + bytes(7))


def transaction_mac(profile, key, data):
    """A 4-byte MAC1/MAC2/TAC with a zero IV; PBOC transaction keys are single DES."""
    if profile == "sm4":
        return pboc_mac("sm4", key, bytes(16), data)[:4]
    return pboc_mac("des", key, bytes(8), data)[:4]


def tac_key(profile, dtk):
    """PBOC folds a 16-byte DTK to left XOR right; an 8-byte DTK and SM4 DTKs are used as is."""
    if profile == "pboc" and len(dtk) == 16:
        return xor(dtk[:8], dtk[8:])
    return dtk


def op_block_encrypt(req):
    return {"out": hexu(BlockCipher(req["alg"], param(req, "key")).ecb(param(req, "data")))}


def op_pboc_mac(req):
    mac = pboc_mac(req["alg"], param(req, "key"), param(req, "iv"), param(req, "data"))
    return {"mac": hexu(mac)}


def op_cmac(req):
    return {"mac": hexu(cmac(req["alg"], param(req, "key"), param(req, "data")))}


def op_diversify(req):
    key = param(req, "key")
    for factor in req["factors"]:
        key = diversify(req["profile"], key, bytes.fromhex(factor))
    return {"key": hexu(key)}


def op_purchase(req):
    profile = req["profile"]
    amount, kind, terminal = param(req, "amount"), param(req, "type"), param(req, "terminal_id")
    seq, date, time = param(req, "terminal_seq"), param(req, "date"), param(req, "time")
    sk_input = param(req, "card_random") + param(req, "offline_seq") + seq[2:]
    sk = session_key(profile, param(req, "dpk"), sk_input)
    tac_data = amount + kind + terminal + seq + date + time
    return {
        "session_key": hexu(sk),
        "mac1": hexu(transaction_mac(profile, sk, amount + kind + terminal + date + time)),
        "mac2": hexu(transaction_mac(profile, sk, amount)),
        "tac": hexu(transaction_mac(profile, tac_key(profile, param(req, "dtk")), tac_data)),
    }


def op_load(req):
    profile = req["profile"]
    amount, kind, terminal = param(req, "amount"), param(req, "type"), param(req, "terminal_id")
    online_seq, old = param(req, "online_seq"), param(req, "old_balance")
    date, time = param(req, "date"), param(req, "time")
    sk_input = param(req, "card_random") + online_seq + b"\x80\x00"
    sk = session_key(profile, param(req, "dlk"), sk_input)
    new_balance = (int.from_bytes(old, "big") + int.from_bytes(amount, "big")).to_bytes(4, "big")
    tac_data = new_balance + online_seq + amount + kind + terminal + date + time
    return {
        "session_key": hexu(sk),
        "mac1": hexu(transaction_mac(profile, sk, old + amount + kind + terminal)),
        "mac2": hexu(transaction_mac(profile, sk, amount + kind + terminal + date + time)),
        "tac": hexu(transaction_mac(profile, tac_key(profile, param(req, "dtk")), tac_data)),
    }


def challenge_block(challenge, n):
    """The challenge followed by zeros up to one block."""
    if len(challenge) not in (4, 8, n) or len(challenge) > n:
        raise ValueError("bad challenge length")
    return challenge + bytes(n - len(challenge))


def op_protect_command(req):
    """CLA|04 INS P1 P2 Lc payload MAC4 (pboc-spec 5.5)."""
    alg, key, data = req["alg"], param(req, "key"), param(req, "data")
    cipher = BlockCipher(alg, key)
    n = cipher.block_len
    if req["encrypt"]:
        block = bytes([len(data)]) + data
        if len(block) % n:
            block = pad_80(block, n)
        data = cipher.ecb(block)
    header = param(req, "header")
    apdu = bytes([header[0] | 0x04]) + header[1:] + bytes([len(data) + 4]) + data
    mac = pboc_mac(alg, key, challenge_block(param(req, "challenge"), n), apdu)
    return {"apdu": hexu(apdu + mac[:4])}


def op_external_auth(req):
    cipher = BlockCipher(req["alg"], param(req, "key"))
    return {"out": hexu(cipher.encrypt(challenge_block(param(req, "challenge"), cipher.block_len)))}


def op_kcv(req):
    alg, key = req["alg"], param(req, "key")
    cipher = BlockCipher(alg, key)
    zeros = bytes(cipher.block_len)
    if req["method"] == "encrypt-zeros":
        return {"kcv": hexu(cipher.encrypt(zeros)[:3])}
    if req["method"] == "cmac":
        return {"kcv": hexu(cmac(alg, key, zeros)[:5])}
    raise ValueError(f"unknown KCV method {req['method']}")


def op_sm3(req):
    return {"digest": sm3.sm3_hash(list(param(req, "data"))).upper()}


def sm2_context(private, public):
    """A gmssl SM2 context in C1||C3||C2 mode. The public key (x||y hex) is set after
    construction because the constructor's lstrip("04") also eats leading 0 and 4 digits of x."""
    context = sm2.CryptSM2(private_key=private, public_key="", mode=1)
    context.public_key = public
    return context


def sm2_public(req):
    """The x||y hex of an uncompressed SEC1 point parameter "pub"."""
    point = req["pub"].lower()
    if len(point) != 130 or not point.startswith("04"):
        raise ValueError("public key is not an uncompressed point")
    return point[2:]


def op_sm2_sign(req):
    """Signs with the default distinguishing identifier 1234567812345678."""
    d = req["d"].lower()
    context = sm2_context(d, "")
    context.public_key = context._kg(int(d, 16), context.ecc_table["g"])
    signature = None
    while signature is None:
        signature = context.sign_with_sm3(param(req, "msg"))
    return {"pub": "04" + context.public_key.upper(), "sig": signature.upper()}


def sm2_za(uid, public):
    """ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA) (GB/T 32918.2 clause 5.5), for the
    x||y hex of the public key; ENTL is the bit length of the ID in two bytes."""
    table = sm2.default_ecc_table
    curve = bytes.fromhex(table["a"] + table["b"] + table["g"] + public)
    data = (8 * len(uid)).to_bytes(2, "big") + uid + curve
    return bytes.fromhex(sm3.sm3_hash(list(data)))


def op_sm2_verify(req):
    """Verifies a raw r||s signature over "msg" by the signer "id" (hex), or by the default
    distinguishing identifier when there is no "id". With an ID, e = SM3(ZA || M) is computed
    here and gmssl verifies over e (its verify_with_sm3 knows only the default ID)."""
    public = sm2_public(req)
    context = sm2_context("", public)
    signature, message = req["sig"].lower(), param(req, "msg")
    if "id" not in req:
        return {"ok": bool(context.verify_with_sm3(signature, message))}
    e = bytes.fromhex(sm3.sm3_hash(list(sm2_za(param(req, "id"), public) + message)))
    return {"ok": bool(context.verify(signature, e))}


def op_sm2_encrypt(req):
    """Encrypts to C1||C3||C2 and adds the 04 prefix that gmssl leaves off C1."""
    context = sm2_context("", sm2_public(req))
    ciphertext = None
    while ciphertext is None:
        ciphertext = context.encrypt(param(req, "msg"))
    return {"ct": "04" + hexu(ciphertext)}


def op_sm2_decrypt(req):
    """Decrypts C1||C3||C2 (C1 with its 04 prefix) and checks C3, which gmssl does not."""
    d = req["d"].lower()
    ciphertext = param(req, "ct")
    if len(ciphertext) < 97 or ciphertext[0] != 0x04:
        raise ValueError("ciphertext too short or C1 not uncompressed")
    c1, c3 = ciphertext[1:65], ciphertext[65:97]
    context = sm2_context(d, "")
    message = context.decrypt(ciphertext[1:])
    shared = bytes.fromhex(context._kg(int(d, 16), c1.hex()))
    if bytes.fromhex(sm3.sm3_hash(list(shared[:32] + message + shared[32:]))) != c3:
        raise ValueError("C3 does not verify")
    return {"msg": hexu(message)}


def op_p256_sign(req):
    """ECDSA P-256 with SHA-256: the public key and the signature in DER and raw r||s."""
    key = ec.derive_private_key(int(req["d"], 16), ec.SECP256R1())
    der = key.sign(param(req, "msg"), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return {"pub": hexu(public), "der": hexu(der), "raw": hexu(raw)}


def op_p256_verify(req):
    """Verifies a raw r||s ("sig") or DER ("der") signature over "msg", or over a SHA-256
    "digest" computed by the caller."""
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), param(req, "pub"))
    if "der" in req:
        der = param(req, "der")
    else:
        raw = param(req, "sig")
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        der = utils.encode_dss_signature(r, s)
    if "digest" in req:
        signed, algorithm = param(req, "digest"), ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    else:
        signed, algorithm = param(req, "msg"), ec.ECDSA(hashes.SHA256())
    try:
        public.verify(der, signed, algorithm)
        return {"ok": True}
    except InvalidSignature:
        return {"ok": False}


OPS = {
    "block_encrypt": op_block_encrypt,
    "pboc_mac": op_pboc_mac,
    "cmac": op_cmac,
    "diversify": op_diversify,
    "purchase": op_purchase,
    "load": op_load,
    "protect_command": op_protect_command,
    "external_auth": op_external_auth,
    "kcv": op_kcv,
    "sm3": op_sm3,
    "sm2_sign": op_sm2_sign,
    "sm2_verify": op_sm2_verify,
    "sm2_encrypt": op_sm2_encrypt,
    "sm2_decrypt": op_sm2_decrypt,
    "p256_sign": op_p256_sign,
    "p256_verify": op_p256_verify,
}


def answer(req):
    """The response to one request; a failure becomes an "error" field."""
    try:
        return OPS[req["op"]](req)
    except Exception as error:  # reported per request; the batch goes on
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    json.dump([answer(req) for req in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
