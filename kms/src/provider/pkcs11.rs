//! A PKCS#11 token behind the [`Hsm`] trait (tested against SoftHSM2): 3DES, AES and P-256
//! keys live as token objects; nothing but references, check values, cryptograms, signatures
//! and public keys ever leaves the token.
//!
//! # Key objects and references
//!
//! Every key is a token object (`CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not
//! `CKA_EXTRACTABLE`, not `CKA_MODIFIABLE`, not `CKA_COPYABLE`) with a random 16-byte `CKA_ID`
//! drawn from the token and the label `ykt:<hex id>`; a P-256 key is a key pair sharing the
//! id. The [`WrappedKey`] bytes are a 49-byte reference to it:
//!
//! ```text
//! 01 || id(16) || HMAC-SHA256(binding key, 01 || attributes(5) || id)(32)
//! ```
//!
//! The binding key is a 256-bit generic secret labelled `ykt-binding`, made in the token by the
//! first [`Pkcs11Hsm::open`] and never extractable. The token computes the HMAC
//! (`CKM_SHA256_HMAC`) of every reference it is given; the tag is then compared in constant
//! time (a token's own `C_Verify` may compare with `memcmp`). Only then is the object looked
//! up, so a reference whose attributes were changed (re-labelled), or that was made by another
//! token, is [`KmsError::MalformedKey`] and its object is never touched. A destroyed key's
//! reference still verifies but its object is gone: [`KmsError::NotFound`].
//!
//! The modes of use are also set as the object's PKCS#11 attributes, so the token itself
//! refuses what they exclude: `derive` and `mac` give `CKA_DERIVE` (PBOC diversification and
//! session keys are key derivations by encryption), `encrypt` gives `CKA_ENCRYPT` (and
//! `CKA_WRAP` for a key-encryption key), `sign` gives `CKA_SIGN` on the private key. AES keys
//! also carry `CKA_SIGN`: their check value is a CMAC computed by the token. No key may
//! decrypt, unwrap or be wrapped. Before calling the token, each method also applies the
//! simulator engine's attribute rules ([`ykt_hsm_sim::Hsm`]), with the same errors.
//!
//! # What the token does
//!
//! - Generate 3DES (`CKK_DES2`), AES-128/256 and P-256 keys; check values (3DES encrypt-zeros,
//!   AES CMAC of zeros, 5 bytes, or encrypt-zeros); ECDSA P-256 signatures (raw `CKM_ECDSA`
//!   in the token over the SHA-256 digest, computed here from the message or given by the
//!   caller); public keys (`CKA_EC_POINT`); random bytes; destroying a key
//!   (`C_DestroyObject`).
//! - Form a 3DES or AES key from 2 or 3 clear components:
//!   [`ykt_hsm_sim::component::combine`] checks each component against its officer's check
//!   value and XORs them in zeroized memory, then `C_CreateObject` imports the result as a
//!   sensitive, non-extractable object and the token's check value must equal the combined
//!   one. As with any `C_CreateObject` import, the components meet in this process's memory
//!   for the instant of the import; a ceremony that must never assemble the key outside the
//!   token enters the components at the token's own console.
//! - The EXTERNAL AUTHENTICATE cryptogram with the card key itself (`CKM_DES3_ECB`).
//! - PBOC diversification (1 to 3 levels, `DK = 3DES(K, F) || 3DES(K, ~F)` by
//!   `CKM_DES3_ECB_ENCRYPT_DATA` over `F || ~F`, the result a `CKK_DES2` object), and with it
//!   the EXTERNAL AUTHENTICATE cryptogram of a derived card key and online-load MAC2 (the
//!   DLK derived, the single-DES session key `K` derived from it as the two-key 3DES session
//!   object `K || K`, which is the same cipher, MAC1 and MAC2 as `CKM_DES3_CBC` CBC-MACs,
//!   MAC1 compared in constant time), all when the PKCS#11 binding can name
//!   `CKM_DES3_ECB_ENCRYPT_DATA`.
//!
//! `cryptoki` 0.12 cannot: it has no such `Mechanism` and builds a `MechanismType` only from
//! the codes it knows (or `CKM_VENDOR_DEFINED` ones), and `unsafe` is forbidden in this
//! workspace. [`Pkcs11Hsm::open`] probes the binding (`MechanismType::try_from`) and the token
//! (`C_GetMechanismInfo`) once; until both can, derivation, MAC2 and the cryptogram of a
//! derived card key answer [`KmsError::Unsupported`] after their attribute and reference
//! checks ([`Pkcs11Hsm::derives_pboc_keys`] tells). The whole path is tested against
//! SoftHSM2, which implements the mechanism. No other mechanism can stand in: a new object
//! can only come from a derivation, an unwrap (a decryption) or a clear value, and PBOC
//! derivation is an encryption.
//!
//! # What answers [`KmsError::Unsupported`], and why
//!
//! - SM4 and SM2 keys, SM2 signatures (over a message or a digest): PKCS#11 tokens such as
//!   SoftHSM have no SM algorithms.
//! - TAC verification: the PBOC TAC key is `DTK_left XOR DTK_right` used for a single-DES
//!   MAC, and no token mechanism XORs two secret halves into a key (SoftHSM has no XOR
//!   derivation, no retail MAC).
//! - WRITE KEY: the key record (header and key bytes, not block-aligned) must be encrypted and
//!   MACed with a retail MAC inside the HSM; no mechanism builds that record from a key object.
//! - 3DES CMAC check values: `cryptoki` 0.12 has no `CKM_DES3_CMAC`.
//! - Key block (TR-31 style) export and import, custody split and recovery: these are the
//!   simulator's formats and custody scheme.
//!
//! Nothing falls back to computing with a clear key in this process.
//!
//! # Sessions and threads
//!
//! [`Pkcs11Hsm`] is `Send + Sync`. It keeps a pool of read/write sessions of the logged-in
//! user (a `Mutex<Vec<Session>>`): each call takes one (opening a new one when none is idle),
//! so calls run in parallel on their own sessions, and returns it afterwards; a session that
//! failed is checked with `C_GetSessionInfo` and dropped if it is no longer logged in, and a
//! new session logs in again when the token's login was lost. Temporary objects of a call
//! (intermediate derived keys) are session objects destroyed before the call returns. The
//! library is initialised once per process and module (`CKF_OS_LOCKING_OK`), so several
//! providers on one module share it. Calls that create or destroy token objects (generate,
//! form, derive, destroy) run alone on the module, behind a per-module `RwLock`; all others
//! (check values, cryptograms, MACs, signatures, random) run in parallel. SoftHSM's file
//! object store needs this: its file locks (`fcntl`) do not exclude threads of one process,
//! and a token object created while another thread re-reads the token directory fails with
//! `CKR_GENERAL_ERROR`.
//!
//! # SoftHSM notes
//!
//! SoftHSM 2.6 stores a wrong `CKA_CHECK_VALUE` on derived DES keys (it computes the
//! generic-secret check value), so the check value of a derived key is computed by a token
//! operation; the stored one is used only for generated and imported keys, where it is the
//! encrypt-zeros value. Anyone holding the token PIN can derive a non-sensitive child from a
//! derive-capable key on SoftHSM; the PIN is what keeps keys inside, so it is read from a
//! file and never logged.

use super::{Custody, GeneratedKey, Hsm, KeyCheck, ProviderKind, SignInput, WrappedKey, WriteKey};
use crate::error::{KmsError, Result};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::misc::KeyDerivationStringData;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use ykt_crypto::p256::P256PublicKey;
use ykt_crypto::{CryptoError, Kcv, KcvMethod, Load, Signature};
use ykt_hsm_sim::component::combine;
use ykt_hsm_sim::policy;
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{
    FormedKcvs, KeyAlgorithm, KeyAttributes, KeyComponent, KeyUsage, Modes, TacCheck,
};
use zeroize::{Zeroize, Zeroizing};

/// The provider name in [`KmsError::Unsupported`].
const PROVIDER: &str = "PKCS#11";
/// Version byte of the reference format.
const FORMAT: u8 = 0x01;
/// Length of a key object's `CKA_ID`.
const ID_LEN: usize = 16;
/// Length of the binding HMAC.
const TAG_LEN: usize = 32;
/// Length of a reference.
const REFERENCE_LEN: usize = 1 + ID_LEN + TAG_LEN;
/// Label of the token's binding key.
const BINDING_LABEL: &str = "ykt-binding";
/// Most idle sessions kept in the pool.
const MAX_IDLE_SESSIONS: usize = 16;
/// DER of the P-256 curve OID (1.2.840.10045.3.1.7), the `CKA_EC_PARAMS` of P-256 keys.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// `CKM_DES3_ECB_ENCRYPT_DATA` (PKCS#11 v2.40 §2.16.3).
const CKM_DES3_ECB_ENCRYPT_DATA: std::ffi::c_ulong = 0x0000_1102;

/// Where the token is and how to log in to it.
pub struct Pkcs11Config {
    /// The PKCS#11 module (for SoftHSM2 on Debian, `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The label of the token to use.
    pub token_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// A PKCS#11 token behind the [`Hsm`] trait; see the [module documentation](self).
pub struct Pkcs11Hsm {
    module: PathBuf,
    token_label: String,
    slot: Slot,
    pin: AuthPin,
    context: Pkcs11,
    sessions: Mutex<Vec<Session>>,
    writes: Arc<RwLock<()>>,
    binding: ObjectHandle,
    encrypt_data: Option<MechanismType>,
}

impl fmt::Debug for Pkcs11Hsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Hsm")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("slot", &self.slot.id())
            .field("pboc_derivation", &self.encrypt_data.is_some())
            .finish_non_exhaustive()
    }
}

fn unsupported(operation: &'static str) -> KmsError {
    KmsError::Unsupported {
        provider: PROVIDER,
        operation,
    }
}

fn forbidden(operation: &'static str, reason: &'static str) -> KmsError {
    KmsError::Hsm(policy::forbidden(operation, reason))
}

/// A token failure, with the function that failed and the PKCS#11 return value.
fn p11_error(what: &str, error: &P11Error) -> KmsError {
    match error {
        P11Error::Pkcs11(rv, _) => KmsError::Pkcs11(format!("{what}: {rv:?}")),
        other => KmsError::Pkcs11(format!("{what}: {other}")),
    }
}

/// The e-purse keys this token can hold: 3DES (PBOC). SM4 has a profile but no token support.
fn require_pboc(attributes: &KeyAttributes, op: &'static str) -> Result<()> {
    match attributes.algorithm() {
        KeyAlgorithm::TripleDes => Ok(()),
        KeyAlgorithm::Sm4 => Err(unsupported("SM4 keys")),
        _ => Err(forbidden(op, "the key's algorithm has no e-purse profile")),
    }
}

/// The checks of a card-key command, as the simulator's engine applies them, on a 3DES key.
fn check_card_key(
    attributes: &KeyAttributes,
    usages: &[KeyUsage],
    factors: &[[u8; 8]],
    direct: Modes,
    op: &'static str,
) -> Result<()> {
    policy::check_card_key(attributes, usages, factors, direct, op)?;
    require_pboc(attributes, op)
}

/// One PBOC diversification input: `F || ~F`.
fn diversification_data(factor: &[u8; 8]) -> [u8; 16] {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(factor);
    for (out, b) in data[8..].iter_mut().zip(factor) {
        *out = !b;
    }
    data
}

/// `data || 80 00..` to a multiple of 8 bytes: the padding of the PBOC MAC.
fn mac_padded(data: &[u8]) -> Vec<u8> {
    let mut padded = data.to_vec();
    padded.push(0x80);
    padded.resize(padded.len().div_ceil(8) * 8, 0);
    padded
}

/// The key type of a secret-key algorithm this token holds.
fn secret_key_type(algorithm: KeyAlgorithm) -> Result<KeyType> {
    match algorithm {
        KeyAlgorithm::TripleDes => Ok(KeyType::DES2),
        KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256 => Ok(KeyType::AES),
        KeyAlgorithm::Sm4 => Err(unsupported("SM4 keys")),
        KeyAlgorithm::Sm2 => Err(unsupported("SM2 keys")),
        KeyAlgorithm::P256 => Err(forbidden("a secret-key operation", "the key is asymmetric")),
    }
}

fn label_of(id: &[u8; ID_LEN]) -> Vec<u8> {
    format!("ykt:{}", hex::encode(id)).into_bytes()
}

/// The PKCS#11 usage attributes of a secret key with `attributes` (see the module doc).
fn secret_usage(attributes: &KeyAttributes) -> [Attribute; 7] {
    let modes = attributes.modes();
    let encrypt = modes.contains(Modes::ENCRYPT);
    let aes = matches!(
        attributes.algorithm(),
        KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256
    );
    [
        Attribute::Encrypt(encrypt),
        Attribute::Wrap(encrypt && attributes.usage() == KeyUsage::KeyEncryption),
        Attribute::Derive(modes.contains(Modes::DERIVE) || modes.contains(Modes::MAC)),
        Attribute::Sign(aes),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Verify(false),
    ]
}

/// The template of a persistent secret-key object.
fn secret_template(attributes: &KeyAttributes, id: &[u8; ID_LEN]) -> Result<Vec<Attribute>> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(secret_key_type(attributes.algorithm())?),
    ];
    template.extend(persistent(id));
    template.extend(secret_usage(attributes));
    template.push(Attribute::Modifiable(false));
    Ok(template)
}

/// The attributes every persistent key object has, but `CKA_MODIFIABLE` (false), which
/// comes last in a template: SoftHSM refuses the attributes after it when it derives an
/// object.
fn persistent(id: &[u8; ID_LEN]) -> [Attribute; 7] {
    [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Copyable(false),
        Attribute::Id(id.to_vec()),
        Attribute::Label(label_of(id)),
    ]
}

/// The template of a temporary (session) secret key of `key_type`.
fn session_template(key_type: KeyType, usage: &[Attribute]) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    template.extend_from_slice(usage);
    template
}

/// A module loaded in this process, and the lock that makes its token-object writes
/// exclusive.
#[derive(Clone)]
struct Module {
    context: Pkcs11,
    writes: Arc<RwLock<()>>,
}

/// Process-wide library contexts, one per module: `C_Initialize` runs once per process.
fn module(module: &Path) -> Result<Module> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(loaded) = modules.get(module) {
        return Ok(loaded.clone());
    }
    let what = format!("loading {}", module.display());
    let context = Pkcs11::new(module).map_err(|e| p11_error(&what, &e))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(p11_error("C_Initialize", &e)),
    }
    let loaded = Module {
        context,
        writes: Arc::default(),
    };
    modules.insert(module.to_path_buf(), loaded.clone());
    Ok(loaded)
}

/// A call's hold on its module: shared for calls that only use objects, exclusive for calls
/// that create or destroy token objects.
#[allow(dead_code, reason = "the guard is held for the call, never read")]
enum Access<'a> {
    Shared(RwLockReadGuard<'a, ()>),
    Exclusive(RwLockWriteGuard<'a, ()>),
}

fn shared(lock: &RwLock<()>) -> Access<'_> {
    Access::Shared(lock.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

fn exclusive(lock: &RwLock<()>) -> Access<'_> {
    Access::Exclusive(
        lock.write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// Opens a read/write session and logs in as the user unless the application already is.
fn open_session(context: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<Session> {
    let session = context
        .open_rw_session(slot)
        .map_err(|e| p11_error("C_OpenSession", &e))?;
    let state = session
        .get_session_info()
        .map_err(|e| p11_error("C_GetSessionInfo", &e))?
        .session_state();
    if state != SessionState::RwUser {
        match session.login(UserType::User, Some(pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(p11_error("C_Login", &e)),
        }
    }
    Ok(session)
}

/// The token's binding key, made on first use. Opens in this process are serialised by the
/// module's write lock, so parallel first opens make one key; a token with several is
/// refused.
fn find_or_make_binding(session: &Session, writes: &RwLock<()>) -> Result<ObjectHandle> {
    let _alone = exclusive(writes);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Label(BINDING_LABEL.as_bytes().to_vec()),
    ];
    let found = session
        .find_objects(&template)
        .map_err(|e| p11_error("C_FindObjects (binding key)", &e))?;
    match found[..] {
        [handle] => Ok(handle),
        [] => {
            let mut template = template.to_vec();
            template.extend([
                Attribute::ValueLen(32.into()),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Modifiable(false),
                Attribute::Copyable(false),
                Attribute::Sign(true),
                Attribute::Verify(false),
                Attribute::Encrypt(false),
                Attribute::Derive(false),
                Attribute::Id(BINDING_LABEL.as_bytes().to_vec()),
            ]);
            session
                .generate_key(&Mechanism::GenericSecretKeyGen, &template)
                .map_err(|e| p11_error("C_GenerateKey (binding key)", &e))
        }
        _ => Err(KmsError::Pkcs11(format!(
            "several `{BINDING_LABEL}` keys on the token"
        ))),
    }
}

/// The encrypt-data derivation mechanism, if this PKCS#11 binding can name it.
fn encrypt_data_mechanism_type() -> Option<MechanismType> {
    MechanismType::try_from(CKM_DES3_ECB_ENCRYPT_DATA).ok()
}

/// A session taken from the pool; it goes back when dropped, unless it failed and is no
/// longer a logged-in read/write session.
struct Lease<'a> {
    hsm: &'a Pkcs11Hsm,
    session: Option<Session>,
    failed: bool,
    _access: Access<'a>,
}

impl Lease<'_> {
    fn session(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }

    /// Maps a token failure of `what`, remembering that the session failed.
    fn check<T>(&mut self, what: &str, result: cryptoki::error::Result<T>) -> Result<T> {
        result.map_err(|e| {
            self.failed = true;
            p11_error(what, &e)
        })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if self.failed
            && !matches!(
                session.get_session_info().map(|info| info.session_state()),
                Ok(SessionState::RwUser)
            )
        {
            return;
        }
        let mut idle = self
            .hsm
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
    }
}

/// Session objects of one call, destroyed when dropped.
struct Temporaries<'s> {
    session: &'s Session,
    handles: Vec<ObjectHandle>,
}

impl Drop for Temporaries<'_> {
    fn drop(&mut self) {
        for handle in self.handles.drain(..) {
            // A session object also disappears with its session; nothing else to do on failure.
            let _ = self.session.destroy_object(handle);
        }
    }
}

impl Pkcs11Hsm {
    /// Loads the module, finds the token by label, logs in as the user, and finds or makes
    /// the binding key.
    pub fn open(config: Pkcs11Config) -> Result<Self> {
        let Module { context, writes } = module(&config.module)?;
        let slots = context
            .get_slots_with_token()
            .map_err(|e| p11_error("C_GetSlotList", &e))?;
        let mut found = None;
        for slot in slots {
            let info = context
                .get_token_info(slot)
                .map_err(|e| p11_error("C_GetTokenInfo", &e))?;
            if info.label().trim_end() == config.token_label {
                if found.is_some() {
                    return Err(KmsError::Pkcs11(format!(
                        "several tokens are labelled `{}`",
                        config.token_label
                    )));
                }
                found = Some(slot);
            }
        }
        let slot = found.ok_or_else(|| {
            KmsError::Pkcs11(format!(
                "no token labelled `{}` in {}",
                config.token_label,
                config.module.display()
            ))
        })?;
        let encrypt_data = encrypt_data_mechanism_type().filter(|mechanism| {
            context
                .get_mechanism_info(slot, *mechanism)
                .is_ok_and(|info| info.derive())
        });
        let pin = AuthPin::from(config.pin.as_str());
        let session = open_session(&context, slot, &pin)?;
        let binding = find_or_make_binding(&session, &writes)?;
        Ok(Self {
            module: config.module,
            token_label: config.token_label,
            slot,
            pin,
            context,
            sessions: Mutex::new(vec![session]),
            writes,
            binding,
            encrypt_data,
        })
    }

    /// True if the token derives PBOC keys here (see the module documentation).
    pub fn derives_pboc_keys(&self) -> bool {
        self.encrypt_data.is_some()
    }

    /// A session for a call that only uses objects (and makes session objects).
    fn lease(&self) -> Result<Lease<'_>> {
        self.lease_with(shared(&self.writes))
    }

    /// A session for a call that creates or destroys token objects.
    fn writing_lease(&self) -> Result<Lease<'_>> {
        self.lease_with(exclusive(&self.writes))
    }

    fn lease_with<'a>(&'a self, access: Access<'a>) -> Result<Lease<'a>> {
        let idle = self
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let session = match idle {
            Some(session) => session,
            None => self.new_session()?,
        };
        Ok(Lease {
            hsm: self,
            session: Some(session),
            failed: false,
            _access: access,
        })
    }

    fn new_session(&self) -> Result<Session> {
        open_session(&self.context, self.slot, &self.pin)
    }

    /// The binding HMAC of `attributes` and `id`, computed by the token.
    fn tag(
        &self,
        lease: &mut Lease<'_>,
        attributes: &KeyAttributes,
        id: &[u8; ID_LEN],
    ) -> Result<Vec<u8>> {
        let mut message = Vec::with_capacity(1 + KeyAttributes::ENCODED_LEN + ID_LEN);
        message.push(FORMAT);
        message.extend_from_slice(&attributes.to_bytes());
        message.extend_from_slice(id);
        let tag = lease
            .session()
            .sign(&Mechanism::Sha256Hmac, self.binding, &message);
        let tag = lease.check("C_Sign (binding MAC)", tag)?;
        if tag.len() != TAG_LEN {
            return Err(KmsError::Pkcs11(format!(
                "binding MAC of {} bytes",
                tag.len()
            )));
        }
        Ok(tag)
    }

    /// The reference of the object `id` with `attributes`.
    fn reference(
        &self,
        lease: &mut Lease<'_>,
        attributes: KeyAttributes,
        id: &[u8; ID_LEN],
    ) -> Result<WrappedKey> {
        let mut bytes = Vec::with_capacity(REFERENCE_LEN);
        bytes.push(FORMAT);
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&self.tag(lease, &attributes, id)?);
        Ok(WrappedKey::new(attributes, bytes))
    }

    /// Checks a reference's binding MAC; returns the object id.
    fn verify(&self, lease: &mut Lease<'_>, key: &WrappedKey) -> Result<[u8; ID_LEN]> {
        let bytes = key.as_bytes();
        if bytes.len() != REFERENCE_LEN || bytes[0] != FORMAT {
            return Err(KmsError::MalformedKey("not a PKCS#11 key reference"));
        }
        let id: [u8; ID_LEN] = bytes[1..1 + ID_LEN].try_into().expect("16 bytes");
        let tag = self.tag(lease, key.attributes(), &id)?;
        ykt_crypto::mac::verify(&tag, &bytes[1 + ID_LEN..], "key reference").map_err(|_| {
            KmsError::MalformedKey(
                "the reference is not bound to these attributes by this token's binding key",
            )
        })?;
        Ok(id)
    }

    /// The one object of `class` and `key_type` with `id`.
    fn find(
        &self,
        lease: &mut Lease<'_>,
        class: ObjectClass,
        key_type: KeyType,
        id: &[u8; ID_LEN],
    ) -> Result<ObjectHandle> {
        let template = [
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Token(true),
            Attribute::Id(id.to_vec()),
        ];
        let found = lease.session().find_objects(&template);
        match lease.check("C_FindObjects", found)?[..] {
            [handle] => Ok(handle),
            [] => Err(KmsError::NotFound {
                kind: "token key object",
                id: String::from_utf8_lossy(&label_of(id)).into_owned(),
            }),
            _ => Err(KmsError::Pkcs11(format!(
                "several token objects with the id of {}",
                String::from_utf8_lossy(&label_of(id))
            ))),
        }
    }

    /// Verifies a reference to a secret key and finds its object.
    fn open_secret(&self, lease: &mut Lease<'_>, key: &WrappedKey) -> Result<ObjectHandle> {
        let id = self.verify(lease, key)?;
        let key_type = secret_key_type(key.attributes().algorithm())?;
        self.find(lease, ObjectClass::SECRET_KEY, key_type, &id)
    }

    fn new_id(&self, lease: &mut Lease<'_>) -> Result<[u8; ID_LEN]> {
        let mut id = [0u8; ID_LEN];
        let random = lease.session().generate_random_slice(&mut id);
        lease.check("C_GenerateRandom", random)?;
        Ok(id)
    }

    /// Makes the reference of a new object, destroying the object if that fails.
    fn finish(
        &self,
        lease: &mut Lease<'_>,
        attributes: KeyAttributes,
        id: &[u8; ID_LEN],
        handles: &[ObjectHandle],
    ) -> Result<WrappedKey> {
        self.reference(lease, attributes, id)
            .inspect_err(|_| self.discard(lease, handles))
    }

    /// Destroys new token objects after a failure (best effort: the failure is reported).
    fn discard(&self, lease: &Lease<'_>, handles: &[ObjectHandle]) {
        for handle in handles {
            let _ = lease.session().destroy_object(*handle);
        }
    }

    /// The check value of a secret-key object, computed by the token.
    fn object_kcv(
        &self,
        lease: &mut Lease<'_>,
        handle: ObjectHandle,
        attributes: &KeyAttributes,
        method: KcvMethod,
    ) -> Result<Kcv> {
        let encrypt = attributes.modes().contains(Modes::ENCRYPT);
        let value = match (attributes.algorithm(), method) {
            (KeyAlgorithm::TripleDes, KcvMethod::EncryptZeros) => {
                if encrypt {
                    let zeros = lease
                        .session()
                        .encrypt(&Mechanism::Des3Ecb, handle, &[0; 8]);
                    lease.check("C_Encrypt (check value)", zeros)?
                } else if let Some(mechanism) = self.encrypt_data {
                    self.derived_check_value(lease, handle, mechanism)?
                } else {
                    // Without encrypt-data this provider derives nothing: the key was
                    // generated or imported, and its stored check value is right.
                    self.stored_check_value(lease, handle)?
                }
            }
            (KeyAlgorithm::TripleDes, KcvMethod::Cmac) => {
                return Err(unsupported("CMAC check value of a 3DES key"));
            }
            (KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256, KcvMethod::Cmac) => {
                let tag = lease.session().sign(&Mechanism::AesCMac, handle, &[0; 16]);
                lease.check("C_Sign (CMAC check value)", tag)?
            }
            (KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256, KcvMethod::EncryptZeros) => {
                if encrypt {
                    let zeros = lease
                        .session()
                        .encrypt(&Mechanism::AesEcb, handle, &[0; 16]);
                    lease.check("C_Encrypt (check value)", zeros)?
                } else {
                    self.stored_check_value(lease, handle)?
                }
            }
            (KeyAlgorithm::Sm4, _) => return Err(unsupported("SM4 keys")),
            (KeyAlgorithm::Sm2 | KeyAlgorithm::P256, _) => {
                return Err(forbidden("a check value", "the key is asymmetric"));
            }
        };
        let len = match method {
            KcvMethod::EncryptZeros => 3,
            KcvMethod::Cmac => 5,
        };
        let value = value
            .get(..len)
            .ok_or_else(|| KmsError::Pkcs11(format!("check value of {} bytes", value.len())))?;
        Ok(Kcv::from_value(method, value)?)
    }

    /// The token's `CKA_CHECK_VALUE` (encrypt-zeros, 3 bytes) of a generated or imported key.
    fn stored_check_value(&self, lease: &mut Lease<'_>, handle: ObjectHandle) -> Result<Vec<u8>> {
        let read = lease
            .session()
            .get_attributes(handle, &[AttributeType::CheckValue]);
        match lease
            .check("C_GetAttributeValue (check value)", read)?
            .pop()
        {
            Some(Attribute::CheckValue(value)) => Ok(value),
            _ => Err(unsupported("check value of a key without encrypt")),
        }
    }

    /// `3DES(K, 0^8)[..3]` of a derive-capable key: derived into a 3-byte generic secret that
    /// holds only the check value, read, and destroyed.
    fn derived_check_value(
        &self,
        lease: &mut Lease<'_>,
        handle: ObjectHandle,
        mechanism: MechanismType,
    ) -> Result<Vec<u8>> {
        let zeros = [0u8; 8];
        let params = KeyDerivationStringData::new(&zeros);
        let derive =
            Mechanism::VendorDefined(VendorDefinedMechanism::new(mechanism, Some(&params)));
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(3.into()),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ];
        let kcv = lease.session().derive_key(&derive, handle, &template);
        let kcv = lease.check("C_DeriveKey (check value)", kcv)?;
        let temporaries = Temporaries {
            session: lease.session(),
            handles: vec![kcv],
        };
        let read = temporaries
            .session
            .get_attributes(kcv, &[AttributeType::Value]);
        drop(temporaries);
        match lease
            .check("C_GetAttributeValue (check value)", read)?
            .pop()
        {
            Some(Attribute::Value(value)) if value.len() == 3 => Ok(value),
            _ => Err(KmsError::Pkcs11(
                "derived check value of the wrong size".into(),
            )),
        }
    }

    /// Derives by `CKM_DES3_ECB_ENCRYPT_DATA` over `data` from `base`.
    fn encrypt_data(
        &self,
        lease: &mut Lease<'_>,
        base: ObjectHandle,
        data: &[u8],
        template: &[Attribute],
    ) -> Result<ObjectHandle> {
        let mechanism = self
            .encrypt_data
            .ok_or(unsupported("PBOC derivation (CKM_DES3_ECB_ENCRYPT_DATA)"))?;
        let params = KeyDerivationStringData::new(data);
        let derive =
            Mechanism::VendorDefined(VendorDefinedMechanism::new(mechanism, Some(&params)));
        let derived = lease.session().derive_key(&derive, base, template);
        lease.check("C_DeriveKey", derived)
    }

    /// Diversifies `master` down `factors`: every level but the last becomes a derive-only
    /// session object in `temporaries`; the last gets `last` as its template.
    fn diversify(
        &self,
        lease: &mut Lease<'_>,
        master: ObjectHandle,
        factors: &[[u8; 8]],
        last: &[Attribute],
        temporaries: &mut Vec<ObjectHandle>,
    ) -> Result<ObjectHandle> {
        let intermediate = session_template(KeyType::DES2, &[Attribute::Derive(true)]);
        let mut parent = master;
        for (level, factor) in factors.iter().enumerate() {
            let template = if level + 1 == factors.len() {
                last
            } else {
                &intermediate
            };
            parent = self.encrypt_data(lease, parent, &diversification_data(factor), template)?;
            if level + 1 < factors.len() {
                temporaries.push(parent);
            }
        }
        Ok(parent)
    }

    /// The card key of `master` down `factors` (the master itself with none), usable with
    /// `usage`; temporary objects are added to `temporaries`.
    fn card_key(
        &self,
        lease: &mut Lease<'_>,
        master: ObjectHandle,
        factors: &[[u8; 8]],
        key_type: KeyType,
        usage: Attribute,
        temporaries: &mut Vec<ObjectHandle>,
    ) -> Result<ObjectHandle> {
        if factors.is_empty() {
            return Ok(master);
        }
        let last = session_template(key_type, std::slice::from_ref(&usage));
        let key = self.diversify(lease, master, factors, &last, temporaries)?;
        temporaries.push(key);
        Ok(key)
    }

    /// The PBOC MAC (single-DES CBC-MAC, `80 00..` padding, leftmost 4 bytes) of `data`
    /// under the session key `key`, a `K || K` two-key 3DES object.
    fn des_mac(&self, lease: &mut Lease<'_>, key: ObjectHandle, data: &[u8]) -> Result<[u8; 4]> {
        let cbc = lease
            .session()
            .encrypt(&Mechanism::Des3Cbc([0; 8]), key, &mac_padded(data));
        let cbc = lease.check("C_Encrypt (CBC-MAC)", cbc)?;
        let last = cbc
            .len()
            .checked_sub(8)
            .ok_or_else(|| KmsError::Pkcs11("short CBC-MAC output".into()))?;
        Ok(cbc[last..last + 4].try_into().expect("4 bytes"))
    }

    /// Runs `f` with every object `f` lists in its temporaries destroyed afterwards.
    fn with_temporaries<T>(
        &self,
        lease: &mut Lease<'_>,
        f: impl FnOnce(&Self, &mut Lease<'_>, &mut Vec<ObjectHandle>) -> Result<T>,
    ) -> Result<T> {
        let mut handles = Vec::new();
        let result = f(self, lease, &mut handles);
        drop(Temporaries {
            session: lease.session(),
            handles,
        });
        result
    }

    fn generate_secret(&self, attributes: KeyAttributes) -> Result<GeneratedKey> {
        let mut lease = self.writing_lease()?;
        let id = self.new_id(&mut lease)?;
        let mut template = secret_template(&attributes, &id)?;
        let mechanism = match attributes.algorithm() {
            KeyAlgorithm::TripleDes => Mechanism::Des2KeyGen,
            KeyAlgorithm::Aes128 => {
                template.push(Attribute::ValueLen(16.into()));
                Mechanism::AesKeyGen
            }
            _ => {
                template.push(Attribute::ValueLen(32.into()));
                Mechanism::AesKeyGen
            }
        };
        let made = lease.session().generate_key(&mechanism, &template);
        let handle = lease.check("C_GenerateKey", made)?;
        let method = KcvMethod::default_for(
            attributes
                .algorithm()
                .symmetric()
                .expect("a secret-key algorithm"),
        );
        let kcv = self
            .object_kcv(&mut lease, handle, &attributes, method)
            .inspect_err(|_| self.discard(&lease, &[handle]))?;
        Ok(GeneratedKey {
            key: self.finish(&mut lease, attributes, &id, &[handle])?,
            check: KeyCheck::Kcv(kcv),
        })
    }

    fn generate_p256(&self, attributes: KeyAttributes) -> Result<GeneratedKey> {
        let mut lease = self.writing_lease()?;
        let id = self.new_id(&mut lease)?;
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Modifiable(false),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Verify(false),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label_of(&id)),
        ];
        let mut private = persistent(&id).to_vec();
        private.extend([
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
        ]);
        let made = lease
            .session()
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private);
        let (public, private) = lease.check("C_GenerateKeyPair", made)?;
        let point = self
            .ec_point(&mut lease, public)
            .inspect_err(|_| self.discard(&lease, &[private, public]))?;
        Ok(GeneratedKey {
            key: self.finish(&mut lease, attributes, &id, &[private, public])?,
            check: KeyCheck::PublicKey(point),
        })
    }

    /// The uncompressed point of a P-256 public-key object (`CKA_EC_POINT` is a DER OCTET
    /// STRING around it).
    fn ec_point(&self, lease: &mut Lease<'_>, public: ObjectHandle) -> Result<[u8; 65]> {
        let read = lease
            .session()
            .get_attributes(public, &[AttributeType::EcPoint]);
        let point = match lease.check("C_GetAttributeValue (EC point)", read)?.pop() {
            // DER OCTET STRING (04 41 || point); some tokens give the bare point.
            Some(Attribute::EcPoint(der)) => match der.as_slice() {
                [0x04, 0x41, point @ ..] if point.len() == 65 => point.to_vec(),
                point => point.to_vec(),
            },
            _ => return Err(KmsError::Pkcs11("the public key has no EC point".into())),
        };
        let point: [u8; 65] = point.try_into().map_err(|_| {
            KmsError::Pkcs11("the EC point is not an uncompressed P-256 point".into())
        })?;
        P256PublicKey::from_sec1(&point)?;
        Ok(point)
    }
}

impl Hsm for Pkcs11Hsm {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Pkcs11
    }

    fn generate_key(&self, attributes: KeyAttributes) -> Result<GeneratedKey> {
        match attributes.algorithm() {
            KeyAlgorithm::TripleDes | KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256 => {
                self.generate_secret(attributes)
            }
            KeyAlgorithm::P256 => self.generate_p256(attributes),
            KeyAlgorithm::Sm4 => Err(unsupported("SM4 keys")),
            KeyAlgorithm::Sm2 => Err(unsupported("SM2 keys")),
        }
    }

    fn form_key(
        &self,
        attributes: KeyAttributes,
        components: &[KeyComponent],
    ) -> Result<(WrappedKey, FormedKcvs)> {
        let algorithm = match attributes.algorithm() {
            KeyAlgorithm::Sm4 => return Err(unsupported("SM4 keys")),
            other => other
                .symmetric()
                .ok_or(forbidden("forming from components", "asymmetric algorithm"))?,
        };
        let (key, kcvs) = combine(algorithm, components)?;
        let mut lease = self.writing_lease()?;
        let id = self.new_id(&mut lease)?;
        let mut template = secret_template(&attributes, &id)?;
        template.push(Attribute::Value(key.expose_secret().to_vec()));
        drop(key);
        let made = lease.session().create_object(&template);
        for attribute in &mut template {
            if let Attribute::Value(value) = attribute {
                value.zeroize();
            }
        }
        let handle = lease.check("C_CreateObject", made)?;
        let method = kcvs.combined.method();
        let token_kcv = self.object_kcv(&mut lease, handle, &attributes, method);
        if token_kcv.as_ref().ok() != Some(&kcvs.combined) {
            self.discard(&lease, &[handle]);
            token_kcv?;
            return Err(KmsError::Pkcs11(
                "the token's check value of the imported key differs from the combined one".into(),
            ));
        }
        Ok((self.finish(&mut lease, attributes, &id, &[handle])?, kcvs))
    }

    fn custody_split(&self, _key: &WrappedKey, _threshold: u8, _count: u8) -> Result<Custody> {
        Err(unsupported("custody split"))
    }

    fn custody_recover(&self, _block: &str, _shares: &[Share]) -> Result<WrappedKey> {
        Err(unsupported("custody recovery"))
    }

    fn kcv(&self, key: &WrappedKey, method: KcvMethod) -> Result<Kcv> {
        let mut lease = self.lease()?;
        let handle = self.open_secret(&mut lease, key)?;
        self.object_kcv(&mut lease, handle, key.attributes(), method)
    }

    fn derive_key(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        attributes: KeyAttributes,
    ) -> Result<(WrappedKey, Kcv)> {
        const OP: &str = "derivation";
        policy::check_derivation(master.attributes(), factors, &attributes)?;
        require_pboc(master.attributes(), OP)?;
        let mut lease = self.writing_lease()?;
        let base = self.open_secret(&mut lease, master)?;
        if self.encrypt_data.is_none() {
            return Err(unsupported("PBOC derivation (CKM_DES3_ECB_ENCRYPT_DATA)"));
        }
        let id = self.new_id(&mut lease)?;
        let template = secret_template(&attributes, &id)?;
        let handle = self.with_temporaries(&mut lease, |hsm, lease, temporaries| {
            hsm.diversify(lease, base, factors, &template, temporaries)
        })?;
        let kcv = self
            .object_kcv(&mut lease, handle, &attributes, KcvMethod::EncryptZeros)
            .inspect_err(|_| self.discard(&lease, &[handle]))?;
        Ok((self.finish(&mut lease, attributes, &id, &[handle])?, kcv))
    }

    fn load_mac2(
        &self,
        dlk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        const OP: &str = "load MAC1/MAC2";
        check_card_key(
            dlk_master.attributes(),
            &[KeyUsage::Load],
            factors,
            Modes::MAC,
            OP,
        )?;
        let mut lease = self.lease()?;
        let master = self.open_secret(&mut lease, dlk_master)?;
        if self.encrypt_data.is_none() {
            return Err(unsupported("load MAC2 (CKM_DES3_ECB_ENCRYPT_DATA)"));
        }
        self.with_temporaries(&mut lease, |hsm, lease, temporaries| {
            let dlk = hsm.card_key(
                lease,
                master,
                factors,
                KeyType::DES2,
                Attribute::Derive(true),
                temporaries,
            )?;
            // SESLK = 3DES(DLK, random4 || online_seq2 || 8000), a single-DES key, held as
            // the two-key 3DES key SESLK || SESLK (the same cipher): OpenSSL 3 keeps single
            // DES in its legacy provider, so SoftHSM's CKM_DES_* may be unavailable.
            let mut input = [0u8; 16];
            input[..4].copy_from_slice(&load.card_random);
            input[4..6].copy_from_slice(&load.online_seq.to_be_bytes());
            input[6] = 0x80;
            input.copy_within(..8, 8);
            let session_key = session_template(KeyType::DES2, &[Attribute::Encrypt(true)]);
            let session_key = hsm.encrypt_data(lease, dlk, &input, &session_key)?;
            temporaries.push(session_key);
            let mut mac1_data = Vec::with_capacity(15);
            mac1_data.extend_from_slice(&load.old_balance.to_be_bytes());
            mac1_data.extend_from_slice(&load.amount.to_be_bytes());
            mac1_data.push(load.transaction_type);
            mac1_data.extend_from_slice(&load.terminal_id);
            let expected = hsm.des_mac(lease, session_key, &mac1_data)?;
            ykt_crypto::mac::verify(&expected, mac1, "MAC1")?;
            let mut mac2_data = Vec::with_capacity(18);
            mac2_data.extend_from_slice(&load.amount.to_be_bytes());
            mac2_data.push(load.transaction_type);
            mac2_data.extend_from_slice(&load.terminal_id);
            mac2_data.extend_from_slice(&load.date);
            mac2_data.extend_from_slice(&load.time);
            hsm.des_mac(lease, session_key, &mac2_data)
        })
    }

    fn verify_load_tac(
        &self,
        _dtk_master: &WrappedKey,
        _factors: &[[u8; 8]],
        _load: &Load,
        _tac: &[u8],
    ) -> Result<()> {
        Err(unsupported(
            "TAC verification (DTK halves XOR, single-DES MAC)",
        ))
    }

    fn verify_purchase_tacs(
        &self,
        _dtk_master: &WrappedKey,
        _records: &[TacCheck<'_>],
    ) -> Result<Vec<bool>> {
        Err(unsupported(
            "TAC verification (DTK halves XOR, single-DES MAC)",
        ))
    }

    fn write_key_command(&self, _request: &WriteKey<'_>) -> Result<Vec<u8>> {
        Err(unsupported(
            "WRITE KEY (key record encrypted and MACed in the HSM)",
        ))
    }

    fn external_auth_cryptogram(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        const OP: &str = "external authentication";
        check_card_key(
            master.attributes(),
            &[KeyUsage::ExternalAuth, KeyUsage::AppMaster],
            factors,
            Modes::ENCRYPT,
            OP,
        )?;
        if !matches!(challenge.len(), 4 | 8) {
            return Err(KmsError::Crypto(CryptoError::FieldLength {
                field: "challenge",
                expected: "4 or 8 bytes (16 for SM4)",
                actual: challenge.len(),
            }));
        }
        let mut block = [0u8; 8];
        block[..challenge.len()].copy_from_slice(challenge);
        let mut lease = self.lease()?;
        let master = self.open_secret(&mut lease, master)?;
        if !factors.is_empty() && self.encrypt_data.is_none() {
            return Err(unsupported(
                "external authentication with a derived card key (CKM_DES3_ECB_ENCRYPT_DATA)",
            ));
        }
        self.with_temporaries(&mut lease, |hsm, lease, temporaries| {
            let key = hsm.card_key(
                lease,
                master,
                factors,
                KeyType::DES2,
                Attribute::Encrypt(true),
                temporaries,
            )?;
            let cryptogram = lease.session().encrypt(&Mechanism::Des3Ecb, key, &block);
            lease.check("C_Encrypt (external authentication)", cryptogram)
        })
    }

    fn export_key(&self, _key: &WrappedKey, _kek: &WrappedKey) -> Result<String> {
        Err(unsupported("key block export"))
    }

    fn import_key(&self, _block: &str, _kek: &WrappedKey) -> Result<WrappedKey> {
        Err(unsupported("key block import"))
    }

    fn sign(&self, key: &WrappedKey, input: SignInput<'_>) -> Result<Signature> {
        let digest = match input {
            SignInput::P256 { message } => ykt_crypto::p256::sha256(message),
            SignInput::P256Digest { digest } => *digest,
            SignInput::Sm2 { .. } | SignInput::Sm2Digest { .. } => {
                return Err(unsupported("SM2 signatures"));
            }
        };
        policy::check_signing(key.attributes(), KeyAlgorithm::P256)?;
        let mut lease = self.lease()?;
        let id = self.verify(&mut lease, key)?;
        let private = self.find(&mut lease, ObjectClass::PRIVATE_KEY, KeyType::EC, &id)?;
        let signature = lease.session().sign(&Mechanism::Ecdsa, private, &digest);
        let signature = lease.check("C_Sign (ECDSA)", signature)?;
        Ok(Signature::from_raw(&signature)?)
    }

    fn public_key(&self, key: &WrappedKey) -> Result<[u8; 65]> {
        match key.attributes().algorithm() {
            KeyAlgorithm::P256 => {}
            KeyAlgorithm::Sm2 => return Err(unsupported("SM2 keys")),
            _ => {
                return Err(forbidden(
                    "public key export",
                    "a symmetric key has no public key",
                ));
            }
        }
        let mut lease = self.lease()?;
        let id = self.verify(&mut lease, key)?;
        let public = self.find(&mut lease, ObjectClass::PUBLIC_KEY, KeyType::EC, &id)?;
        self.ec_point(&mut lease, public)
    }

    fn random(&self, out: &mut [u8]) -> Result<()> {
        let mut lease = self.lease()?;
        for chunk in out.chunks_mut(1024) {
            let random = lease.session().generate_random_slice(chunk);
            lease.check("C_GenerateRandom", random)?;
        }
        Ok(())
    }

    fn destroy_key(&self, key: &WrappedKey) -> Result<()> {
        let mut lease = self.writing_lease()?;
        let id = self.verify(&mut lease, key)?;
        let handles = match key.attributes().algorithm() {
            KeyAlgorithm::P256 => {
                let private = self.find(&mut lease, ObjectClass::PRIVATE_KEY, KeyType::EC, &id)?;
                let public = self.find(&mut lease, ObjectClass::PUBLIC_KEY, KeyType::EC, &id);
                let mut handles = vec![private];
                handles.extend(public.ok());
                handles
            }
            algorithm => vec![self.find(
                &mut lease,
                ObjectClass::SECRET_KEY,
                secret_key_type(algorithm)?,
                &id,
            )?],
        };
        for handle in handles {
            let destroyed = lease.session().destroy_object(handle);
            lease.check("C_DestroyObject", destroyed)?;
        }
        Ok(())
    }
}
