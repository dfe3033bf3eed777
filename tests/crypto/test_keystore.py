import copy
import hashlib
import inspect
import traceback
from typing import Any

import pytest
from Crypto.Cipher import AES
from Crypto.Util import Counter

from medledger.crypto.errors import KeystoreError
from medledger.crypto.keys import PrivateKey, keccak256
from medledger.crypto.keystore import decrypt_keystore, encrypt_keystore
from medledger.errors import InvalidInput, UsageError
from tests.crypto._vectors import load

# The scrypt and PBKDF2 test vectors of the Web3 Secret Storage Definition
# (ethereum.org, "Web3 secret storage definition"), copied from the published
# JSON, not regenerated.
VECTOR_PASSWORD = "testpassword"
VECTOR_SECRET = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
VECTOR_ADDRESS = "0x008AeEda4D805471dF9b2A5B0f38A0C3bCBA786b"

PASSWORD = "correct horse battery staple ✓"
SMALL_N = 2**10
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def key() -> PrivateKey:
    return PrivateKey.from_hex(VECTOR_SECRET)


@pytest.fixture(scope="module")
def keystore() -> dict[str, Any]:
    return encrypt_keystore(key(), PASSWORD, scrypt_n=SMALL_N)


def assert_opaque(error: KeystoreError, password: str) -> None:
    text = str(error) + repr(error) + "".join(traceback.format_exception_only(error))
    assert password not in text
    assert VECTOR_SECRET not in text.lower()
    # No chained cause either: the causes carry bytes of the key.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize("name", ["keystore_v3_scrypt.json", "keystore_v3_pbkdf2.json"])
def test_spec_vectors_decrypt(name: str) -> None:
    decrypted = decrypt_keystore(load(name), VECTOR_PASSWORD)
    assert decrypted.to_bytes().hex() == VECTOR_SECRET
    assert decrypted.address == VECTOR_ADDRESS


def test_round_trip(keystore: dict[str, Any]) -> None:
    assert keystore["version"] == 3
    assert keystore["crypto"]["kdf"] == "scrypt"
    assert keystore["crypto"]["kdfparams"]["n"] == SMALL_N
    assert decrypt_keystore(keystore, PASSWORD).to_bytes() == key().to_bytes()


def test_fresh_salt_and_iv_each_time(keystore: dict[str, Any]) -> None:
    again = encrypt_keystore(key(), PASSWORD, scrypt_n=SMALL_N)
    assert again["crypto"]["ciphertext"] != keystore["crypto"]["ciphertext"]
    assert again["crypto"]["kdfparams"]["salt"] != keystore["crypto"]["kdfparams"]["salt"]


def test_keystore_does_not_hold_the_secret_or_password(keystore: dict[str, Any]) -> None:
    text = repr(keystore)
    assert VECTOR_SECRET not in text.lower()
    assert PASSWORD not in text


def test_default_cost_is_the_geth_standard() -> None:
    # Running the default (256 MiB, about a second) would slow the suite; the
    # declared default is what must not silently drop.
    assert inspect.signature(encrypt_keystore).parameters["scrypt_n"].default == 2**18


@pytest.mark.parametrize("password", ["wr0ng-pw", "", PASSWORD + " ", PASSWORD.upper()])
def test_wrong_password(keystore: dict[str, Any], password: str) -> None:
    with pytest.raises(KeystoreError) as caught:
        decrypt_keystore(keystore, password)
    assert_opaque(caught.value, PASSWORD)
    if password:
        assert_opaque(caught.value, password)


def test_wrong_password_on_spec_vector_is_not_echoed() -> None:
    with pytest.raises(KeystoreError) as caught:
        decrypt_keystore(load("keystore_v3_pbkdf2.json"), "hunter2-secret")
    assert_opaque(caught.value, "hunter2-secret")


def flip_hex(text: str, index: int = 0) -> str:
    digit = int(text[index], 16) ^ 1
    return text[:index] + f"{digit:x}" + text[index + 1 :]


@pytest.mark.parametrize("field", ["ciphertext", "mac"])
@pytest.mark.parametrize("index", [0, 63])
def test_tampered_ciphertext_or_mac(keystore: dict[str, Any], field: str, index: int) -> None:
    tampered = copy.deepcopy(keystore)
    tampered["crypto"][field] = flip_hex(tampered["crypto"][field], index)
    with pytest.raises(KeystoreError) as caught:
        decrypt_keystore(tampered, PASSWORD)
    assert_opaque(caught.value, PASSWORD)


def test_tampered_salt(keystore: dict[str, Any]) -> None:
    tampered = copy.deepcopy(keystore)
    params = tampered["crypto"]["kdfparams"]
    params["salt"] = flip_hex(params["salt"])
    with pytest.raises(KeystoreError, match="wrong password or corrupted"):
        decrypt_keystore(tampered, PASSWORD)


def test_tampered_iv_is_caught_by_the_address_check(keystore: dict[str, Any]) -> None:
    # The MAC covers the ciphertext, not the IV: CTR with another IV yields
    # another 32-byte "key", which only the address field can expose.
    tampered = copy.deepcopy(keystore)
    params = tampered["crypto"]["cipherparams"]
    params["iv"] = flip_hex(params["iv"])
    with pytest.raises(KeystoreError, match="does not match"):
        decrypt_keystore(tampered, PASSWORD)


def test_address_mismatch(keystore: dict[str, Any]) -> None:
    other = PrivateKey.from_bytes(b"\x01" * 32).address
    for claimed in (other, other[2:], other.lower()):
        with pytest.raises(KeystoreError, match="does not match"):
            decrypt_keystore({**keystore, "address": claimed}, PASSWORD)
    with pytest.raises(KeystoreError, match="not a string"):
        decrypt_keystore({**keystore, "address": 7}, PASSWORD)


def test_address_in_any_form_is_accepted(keystore: dict[str, Any]) -> None:
    for claimed in (VECTOR_ADDRESS, VECTOR_ADDRESS.lower(), VECTOR_ADDRESS[2:].lower()):
        assert (
            decrypt_keystore({**keystore, "address": claimed}, PASSWORD).address == VECTOR_ADDRESS
        )
    without = {k: v for k, v in keystore.items() if k != "address"}
    assert decrypt_keystore(without, PASSWORD).address == VECTOR_ADDRESS


def test_key_names_are_case_insensitive(keystore: dict[str, Any]) -> None:
    legacy = {("Crypto" if k == "crypto" else k): v for k, v in keystore.items()}
    assert decrypt_keystore(legacy, PASSWORD).address == VECTOR_ADDRESS


def with_crypto(keystore: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(keystore)
    changed["crypto"].update(changes)
    return changed


def with_params(keystore: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(keystore)
    changed["crypto"]["kdfparams"].update(changes)
    return changed


MALFORMED = [
    (lambda ks: [], "document is not an object"),
    (lambda ks: {**ks, "version": 4}, "version must be 3"),
    (lambda ks: {**ks, "version": "3"}, "version must be 3"),
    (lambda ks: {k: v for k, v in ks.items() if k != "crypto"}, "crypto is not an object"),
    (lambda ks: with_crypto(ks, cipher="aes-128-cbc"), "cipher must be aes-128-ctr"),
    (lambda ks: with_crypto(ks, kdf="argon2id"), "kdf must be scrypt or pbkdf2"),
    (lambda ks: with_crypto(ks, kdfparams=None), "kdfparams is not an object"),
    (lambda ks: with_params(ks, dklen=16), "dklen must be 32"),
    (lambda ks: with_params(ks, n=2**30), "cost n\\*r\\*p is too high"),
    (lambda ks: with_params(ks, n=2**18, r=8, p=2), "cost n\\*r\\*p is too high"),
    (lambda ks: with_params(ks, n=0), "n is not a positive integer"),
    (lambda ks: with_params(ks, r="8"), "r is not a positive integer"),
    (lambda ks: with_params(ks, p=True), "p is not a positive integer"),
    (lambda ks: with_params(ks, n=1000), "wrong password or corrupted"),
    (lambda ks: with_params(ks, salt="zz"), "wrong password or corrupted"),
    (lambda ks: with_params(ks, salt=5), "wrong password or corrupted"),
    (lambda ks: with_crypto(ks, ciphertext="00" * 31), "wrong password or corrupted"),
    (lambda ks: with_crypto(ks, mac="not hex"), "wrong password or corrupted"),
    (lambda ks: with_crypto(ks, cipherparams={}), "wrong password or corrupted"),
]


@pytest.mark.parametrize(("mutate", "problem"), MALFORMED)
def test_malformed_keystores(keystore: dict[str, Any], mutate: Any, problem: str) -> None:
    with pytest.raises(KeystoreError, match=problem) as caught:
        decrypt_keystore(mutate(keystore), PASSWORD)
    assert_opaque(caught.value, PASSWORD)


def test_pbkdf2_limits() -> None:
    vector = load("keystore_v3_pbkdf2.json")
    vector["crypto"]["kdfparams"]["prf"] = "hmac-sha512"
    with pytest.raises(KeystoreError, match="prf must be hmac-sha256"):
        decrypt_keystore(vector, VECTOR_PASSWORD)
    vector["crypto"]["kdfparams"].update(prf="hmac-sha256", c=10**9)
    with pytest.raises(KeystoreError, match="round count is too high"):
        decrypt_keystore(vector, VECTOR_PASSWORD)


def forge(plaintext: bytes) -> dict[str, Any]:
    """Build a keystore by hand, to smuggle in plaintext encrypt_keystore would refuse to write."""
    salt, iv = b"s" * 16, b"i" * 16
    derived = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=SMALL_N, r=8, p=1, dklen=32)
    counter = Counter.new(128, initial_value=int.from_bytes(iv, "big"))
    ciphertext = AES.new(derived[:16], AES.MODE_CTR, counter=counter).encrypt(plaintext)
    return {
        "version": 3,
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": iv.hex()},
            "ciphertext": ciphertext.hex(),
            "kdf": "scrypt",
            "kdfparams": {"dklen": 32, "n": SMALL_N, "r": 8, "p": 1, "salt": salt.hex()},
            "mac": keccak256(derived[16:] + ciphertext).hex(),
        },
    }


def test_forged_keystore_with_a_valid_key_decrypts() -> None:
    assert decrypt_keystore(forge(key().to_bytes()), PASSWORD).address == VECTOR_ADDRESS


@pytest.mark.parametrize("plaintext", [bytes(32), N.to_bytes(32, "big"), b"\x01" * 31])
def test_invalid_key_inside_keystore_is_rejected(plaintext: bytes) -> None:
    with pytest.raises(KeystoreError, match="wrong password or corrupted"):
        decrypt_keystore(forge(plaintext), PASSWORD)


@pytest.mark.parametrize("n", [0, 1, 3, 1000, 2**19])
def test_bad_scrypt_n_is_a_usage_error(n: int) -> None:
    with pytest.raises(UsageError):
        encrypt_keystore(key(), PASSWORD, scrypt_n=n)


def test_keystore_error_is_invalid_input() -> None:
    assert issubclass(KeystoreError, InvalidInput)


def test_a_passphrase_that_is_not_unicode_text_is_refused_without_echo() -> None:
    with pytest.raises(UsageError, match="not valid Unicode") as refused:
        encrypt_keystore(key(), "half a pair \ud800", scrypt_n=SMALL_N)
    assert refused.value.__cause__ is None and "\ud800" not in str(refused.value)
