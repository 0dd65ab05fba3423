# Golden vectors of tests/unit/test_dbgsess.c from an independent implementation of the
# byte layouts in core/include/keel/dbgsess.h (python3-cryptography). Run: python3 test_dbgsess_golden.py
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import struct, hashlib
cp = ec.derive_private_key(0x1111111111111111111111111111111111111111111111111111111111111111, ec.SECP256R1())
dp = ec.derive_private_key(0x2222222222222222222222222222222222222222222222222222222222222222, ec.SECP256R1())
pub = lambda k: k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
cpub, dpub = pub(cp), pub(dp)
sess = 0x0102030405060708
z = cp.exchange(ec.ECDH(), dp.public_key())
info = b"keel-debug-keys" + struct.pack("<Q", sess) + cpub + dpub
okm = HKDF(hashes.SHA256(), 32, None, info).derive(z)
down, up = okm[:16], okm[16:]
def nonce(d, seq): return struct.pack("<III", d, 0, seq)
aad = struct.pack("<Q", sess)
f1 = AESGCM(down).encrypt(nonce(0,1), b"$g#67", aad)
f2 = AESGCM(up).encrypt(nonce(1,1), b"+$OK#9a", aad)
oh = hashlib.sha256(b"keel-debug-open" + b"dev-1" + struct.pack("<Q", sess) + cpub).digest()
ah = hashlib.sha256(b"keel-debug-accept" + b"dev-1" + struct.pack("<Q", sess) + cpub + dpub).digest()
def c(name, b): 
    s = ", ".join("0x%02x" % x for x in b)
    print("static const uint8_t %s[%d] = {%s};" % (name, len(b), s))
c("g_client_pub", cpub); c("g_device_pub", dpub); c("g_down_frame", f1); c("g_up_frame", f2); c("g_open_hash", oh); c("g_accept_hash", ah)
