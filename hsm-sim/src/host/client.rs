//! The host protocol client: one authenticated connection, one request at a time.

use super::HostError;
use super::auth;
use super::codec::{Frame, read_frame, write_frame};
use super::protocol::{
    AUTH_LEN, CheckValue, MAX_FRAME, ProtocolError, RemoteKeyCheck, Request, Response, TacRecord,
    decode_response,
};
use crate::attributes::KeyAttributes;
use crate::blob::KeyBlob;
use crate::keyblock::KeyBlock;
use std::net::{TcpStream, ToSocketAddrs};
use ykt_crypto::{KcvMethod, Load, Purchase, Signature};

/// A connection to a host protocol server, authenticated both ways at connect time.
#[derive(Debug)]
pub struct HostClient {
    stream: TcpStream,
    next_id: u32,
}

fn unexpected() -> HostError {
    HostError::Protocol(ProtocolError::Malformed(
        "response fields do not fit the command",
    ))
}

impl HostClient {
    /// Connects to `addr` and authenticates as `name` with `secret`; fails with
    /// [`HostError::ServerProof`] if the server does not know the secret.
    pub fn connect(addr: impl ToSocketAddrs, name: &str, secret: &[u8]) -> Result<Self, HostError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut client = Self { stream, next_id: 1 };
        let key = auth::key(secret);
        let nonce = ykt_crypto::random::bytes::<AUTH_LEN>().map_err(crate::HsmError::from)?;
        let Response::Hello { challenge, proof } = client.call(Request::Hello {
            name: name.to_owned(),
            nonce,
        })?
        else {
            return Err(unexpected());
        };
        if !auth::verify_server_proof(&key, &nonce, &challenge, name, &proof) {
            return Err(HostError::ServerProof);
        }
        let proof = auth::client_proof(&key, &nonce, &challenge, name);
        client.call(Request::Auth { proof })?;
        Ok(client)
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, request: Request) -> Result<Response, HostError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        write_frame(&mut self.stream, &request.encode(id)?)?;
        let body = match read_frame(&mut self.stream, MAX_FRAME)? {
            Frame::Body(body) => body,
            Frame::Closed => {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            Frame::TooLarge(len) => return Err(ProtocolError::FrameTooLarge(len).into()),
        };
        let decoded = decode_response(request.command(), &body)?;
        if decoded.id != id {
            return Err(ProtocolError::Malformed("response to another request").into());
        }
        decoded
            .result
            .map_err(|(status, message)| HostError::Refused { status, message })
    }

    /// [`Hsm::random`](crate::Hsm::random): fills `out` (at most 65,535 bytes).
    pub fn random(&mut self, out: &mut [u8]) -> Result<(), HostError> {
        let len = u16::try_from(out.len())
            .map_err(|_| ProtocolError::Malformed("more than 65535 random bytes"))?;
        match self.call(Request::Random { len })? {
            Response::Bytes(bytes) if bytes.len() == out.len() => {
                out.copy_from_slice(&bytes);
                Ok(())
            }
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::generate_key`](crate::Hsm::generate_key).
    pub fn generate_key(
        &mut self,
        attributes: KeyAttributes,
    ) -> Result<(KeyBlob, RemoteKeyCheck), HostError> {
        match self.call(Request::GenerateKey { attributes })? {
            Response::Generated { blob, check } => Ok((blob, check)),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::kcv`](crate::Hsm::kcv).
    pub fn kcv(&mut self, key: &KeyBlob, method: KcvMethod) -> Result<CheckValue, HostError> {
        match self.call(Request::Kcv {
            key: key.clone(),
            method,
        })? {
            Response::Kcv(kcv) => Ok(kcv),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::derive_key`](crate::Hsm::derive_key).
    pub fn derive_key(
        &mut self,
        master: &KeyBlob,
        factors: &[[u8; 8]],
        attributes: KeyAttributes,
    ) -> Result<(KeyBlob, CheckValue), HostError> {
        match self.call(Request::Derive {
            master: master.clone(),
            factors: factors.to_vec(),
            attributes,
        })? {
            Response::Derived { blob, kcv } => Ok((blob, kcv)),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::export_key`](crate::Hsm::export_key): the block travels as its text.
    pub fn export_key(&mut self, key: &KeyBlob, kek: &KeyBlob) -> Result<KeyBlock, HostError> {
        match self.call(Request::ExportKey {
            key: key.clone(),
            kek: kek.clone(),
        })? {
            Response::KeyBlock(block) => Ok(block),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::import_key`](crate::Hsm::import_key).
    pub fn import_key(&mut self, block: &KeyBlock, kek: &KeyBlob) -> Result<KeyBlob, HostError> {
        match self.call(Request::ImportKey {
            block: block.clone(),
            kek: kek.clone(),
        })? {
            Response::Blob(blob) => Ok(blob),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::destroy_key`](crate::Hsm::destroy_key): once it returns, the server's HSM
    /// refuses the key with [`Status::Destroyed`](super::Status::Destroyed).
    pub fn destroy_key(&mut self, key: &KeyBlob) -> Result<(), HostError> {
        match self.call(Request::DestroyKey { key: key.clone() })? {
            Response::Empty => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::load_mac2`](crate::Hsm::load_mac2).
    pub fn load_mac2(
        &mut self,
        dlk_master: &KeyBlob,
        factors: &[[u8; 8]],
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4], HostError> {
        match self.call(Request::LoadMac2 {
            master: dlk_master.clone(),
            factors: factors.to_vec(),
            load: load.clone(),
            mac1: mac1.to_vec(),
        })? {
            Response::Mac2(mac) => Ok(mac),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::verify_purchase_tac`](crate::Hsm::verify_purchase_tac); a TAC that does not
    /// verify is refused with [`Status::VerificationFailed`](super::Status::VerificationFailed).
    pub fn verify_purchase_tac(
        &mut self,
        dtk_master: &KeyBlob,
        factors: &[[u8; 8]],
        purchase: &Purchase,
        tac: &[u8],
    ) -> Result<(), HostError> {
        match self.call(Request::VerifyTac {
            master: dtk_master.clone(),
            record: TacRecord {
                factors: factors.to_vec(),
                purchase: purchase.clone(),
                tac: tac.to_vec(),
            },
        })? {
            Response::Empty => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::verify_load_tac`](crate::Hsm::verify_load_tac); a TAC that does not verify is
    /// refused with [`Status::VerificationFailed`](super::Status::VerificationFailed).
    pub fn verify_load_tac(
        &mut self,
        master: &KeyBlob,
        factors: &[[u8; 8]],
        load: &Load,
        tac: &[u8],
    ) -> Result<(), HostError> {
        match self.call(Request::VerifyLoadTac {
            master: master.clone(),
            factors: factors.to_vec(),
            load: load.clone(),
            tac: tac.to_vec(),
        })? {
            Response::Empty => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::verify_purchase_tacs`](crate::Hsm::verify_purchase_tacs), at most
    /// [`MAX_BATCH`](super::MAX_BATCH) records per call.
    pub fn verify_purchase_tacs(
        &mut self,
        dtk_master: &KeyBlob,
        records: Vec<TacRecord>,
    ) -> Result<Vec<bool>, HostError> {
        let count = records.len();
        match self.call(Request::VerifyTacs {
            master: dtk_master.clone(),
            records,
        })? {
            Response::Verdicts(verdicts) if verdicts.len() == count => Ok(verdicts),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::write_key_command`](crate::Hsm::write_key_command).
    pub fn write_key_command(
        &mut self,
        request: &crate::WriteKeyRequest<'_>,
    ) -> Result<Vec<u8>, HostError> {
        match self.call(Request::WriteKey {
            key: request.key.clone(),
            key_factors: request.key_factors.to_vec(),
            under: request.under.clone(),
            under_factors: request.under_factors.to_vec(),
            challenge: request.challenge.to_vec(),
            p1: request.p1,
            p2: request.p2,
            record_header: request.record_header.to_vec(),
        })? {
            Response::Bytes(command) => Ok(command),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::external_auth_cryptogram`](crate::Hsm::external_auth_cryptogram).
    pub fn external_auth_cryptogram(
        &mut self,
        master: &KeyBlob,
        factors: &[[u8; 8]],
        challenge: &[u8],
    ) -> Result<Vec<u8>, HostError> {
        match self.call(Request::ExternalAuth {
            master: master.clone(),
            factors: factors.to_vec(),
            challenge: challenge.to_vec(),
        })? {
            Response::Bytes(cryptogram) => Ok(cryptogram),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::sign_sm2`](crate::Hsm::sign_sm2) (message at most 65,535 bytes).
    pub fn sign_sm2(
        &mut self,
        key: &KeyBlob,
        id: &[u8],
        message: &[u8],
    ) -> Result<Signature, HostError> {
        self.signature(Request::SignSm2 {
            key: key.clone(),
            id: id.to_vec(),
            message: message.to_vec(),
        })
    }

    /// [`Hsm::sign_sm2_digest`](crate::Hsm::sign_sm2_digest): `e = SM3(ZA || M)` computed by
    /// the caller.
    pub fn sign_sm2_digest(&mut self, key: &KeyBlob, e: &[u8; 32]) -> Result<Signature, HostError> {
        self.signature(Request::SignSm2Digest {
            key: key.clone(),
            e: *e,
        })
    }

    /// [`Hsm::sign_p256`](crate::Hsm::sign_p256) (message at most 65,535 bytes).
    pub fn sign_p256(&mut self, key: &KeyBlob, message: &[u8]) -> Result<Signature, HostError> {
        self.signature(Request::SignP256 {
            key: key.clone(),
            message: message.to_vec(),
        })
    }

    /// [`Hsm::sign_p256_digest`](crate::Hsm::sign_p256_digest): the SHA-256 digest computed by
    /// the caller.
    pub fn sign_p256_digest(
        &mut self,
        key: &KeyBlob,
        digest: &[u8; 32],
    ) -> Result<Signature, HostError> {
        self.signature(Request::SignP256Digest {
            key: key.clone(),
            digest: *digest,
        })
    }

    /// Sends a signing request and takes the signature from its response.
    fn signature(&mut self, request: Request) -> Result<Signature, HostError> {
        match self.call(request)? {
            Response::Signature(signature) => Ok(signature),
            _ => Err(unexpected()),
        }
    }

    /// [`Hsm::public_key`](crate::Hsm::public_key).
    pub fn public_key(&mut self, key: &KeyBlob) -> Result<[u8; 65], HostError> {
        match self.call(Request::PublicKey { key: key.clone() })? {
            Response::PublicKey(key) => Ok(key),
            _ => Err(unexpected()),
        }
    }
}
