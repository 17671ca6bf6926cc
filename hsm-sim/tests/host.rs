//! The host protocol over 127.0.0.1: every command against the engine called directly,
//! malformed frames, authentication and limits.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use ykt_crypto::epurse::transaction_type;
use ykt_crypto::p256::{P256PublicKey, sha256};
use ykt_crypto::sm2::Sm2PublicKey;
use ykt_crypto::{Kcv, KcvMethod, Load, Profile, Purchase, SymmetricAlgorithm, SymmetricKey};
use ykt_hsm_sim::host::{
    CheckValue, ClientRegistry, HostClient, HostError, HostServer, Limits, RemoteKeyCheck, Status,
    TacRecord,
};
use ykt_hsm_sim::{
    Exportability, Hsm, HsmError, KeyAlgorithm, KeyAttributes, KeyBlob, KeyCheck, KeyComponent,
    KeyUsage, Lmk, Modes, WriteKeyRequest,
};

const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
const SCHOOL: [u8; 8] = [0x51, 0x00, 0xFF, 0, 0, 0, 0, 0];
const SECRET: &[u8] = b"bureau-kms-shared-secret-0001";

fn attrs(
    usage: KeyUsage,
    algorithm: KeyAlgorithm,
    modes: Modes,
    e: Exportability,
) -> KeyAttributes {
    KeyAttributes::new(usage, algorithm, modes, e, 1).unwrap()
}

fn serve_with(limits: Limits) -> (Arc<Hsm>, HostServer) {
    let hsm = Arc::new(Hsm::new(Lmk::generate().unwrap()));
    let mut clients = ClientRegistry::new();
    clients.add("kms", SECRET);
    let server =
        HostServer::bind_with_limits("127.0.0.1:0", Arc::clone(&hsm), clients, limits).unwrap();
    (hsm, server)
}

fn serve() -> (Arc<Hsm>, HostServer) {
    serve_with(Limits::default())
}

/// An SM4 master formed from a known clear key, so MACs and TACs can be made outside.
fn formed(hsm: &Hsm, usage: KeyUsage, modes: Modes, e: Exportability) -> (KeyBlob, SymmetricKey) {
    let clear = [0x3C; 16];
    let (blob, _) = hsm
        .form_key(
            attrs(usage, KeyAlgorithm::Sm4, modes, e),
            &[KeyComponent::new(&clear), KeyComponent::new(&[0x11; 16])],
        )
        .unwrap();
    let combined: Vec<u8> = clear.iter().map(|b| b ^ 0x11).collect();
    (
        blob,
        SymmetricKey::new(SymmetricAlgorithm::Sm4, &combined).unwrap(),
    )
}

fn purchase(amount: u32) -> Purchase {
    Purchase {
        card_random: [1, 2, 3, 4],
        offline_seq: 7,
        amount,
        transaction_type: transaction_type::EP_PURCHASE,
        terminal_id: [1, 2, 3, 4, 5, 6],
        terminal_seq: 9,
        date: [0x20, 0x26, 0x05, 0x01],
        time: [0x10, 0x20, 0x30],
    }
}

#[test]
fn every_command_matches_the_engine() {
    let (hsm, server) = serve();
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    let profile = Profile::YktSm4V1;

    let mut random = [0u8; 48];
    client.random(&mut random).unwrap();
    assert_ne!(random, [0; 48]);

    let tac_attrs = attrs(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::DERIVE | Modes::MAC,
        Exportability::None,
    );
    let (blob, check) = client.generate_key(tac_attrs).unwrap();
    let engine_kcv = hsm.kcv(&blob, KcvMethod::Cmac).unwrap();
    assert_eq!(check, RemoteKeyCheck::Kcv(CheckValue::from(&engine_kcv)));
    assert_eq!(
        client.kcv(&blob, KcvMethod::Cmac).unwrap(),
        CheckValue::from(&engine_kcv)
    );
    let zeros = hsm.kcv(&blob, KcvMethod::EncryptZeros).unwrap();
    assert_eq!(
        client.kcv(&blob, KcvMethod::EncryptZeros).unwrap(),
        (&zeros).into()
    );

    let (derived, kcv) = client.derive_key(&blob, &[SCHOOL], tac_attrs).unwrap();
    let (_, engine_kcv) = hsm.derive_key(&blob, &[SCHOOL], tac_attrs).unwrap();
    assert_eq!(kcv, (&engine_kcv).into());
    assert_eq!(hsm.kcv(&derived, KcvMethod::Cmac).unwrap(), engine_kcv);

    // Load: a real MAC1 from the card's DLK gives the engine's MAC2.
    let (mlk, mlk_clear) = formed(&hsm, KeyUsage::Load, Modes::DERIVE, Exportability::None);
    let load = Load {
        card_random: [0x9A, 0x1B, 0x2C, 0x3D],
        online_seq: 5,
        old_balance: 1000,
        amount: 5000,
        transaction_type: transaction_type::EP_LOAD,
        terminal_id: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        date: [0x20, 0x26, 0x05, 0x01],
        time: [0x08, 0x00, 0x00],
    };
    let dlk = profile.diversify(&mlk_clear, &ASN).unwrap();
    let mac1 = load
        .mac1(&load.session_key(profile, &dlk).unwrap())
        .unwrap();
    assert_eq!(
        client.load_mac2(&mlk, &[ASN], &load, &mac1).unwrap(),
        hsm.load_mac2(&mlk, &[ASN], &load, &mac1).unwrap()
    );
    let refused = client.load_mac2(&mlk, &[ASN], &load, &[0; 4]).unwrap_err();
    assert_eq!(refused.status(), Some(Status::VerificationFailed));

    // TAC, single and batch.
    let (mtk, mtk_clear) = formed(&hsm, KeyUsage::Tac, Modes::DERIVE, Exportability::None);
    let dtk = profile.diversify_path(&mtk_clear, &[SCHOOL, ASN]).unwrap();
    let good = purchase(250);
    let tac = good.tac(profile, &dtk).unwrap();
    client
        .verify_purchase_tac(&mtk, &[SCHOOL, ASN], &good, &tac)
        .unwrap();
    let bad = client.verify_purchase_tac(&mtk, &[SCHOOL, ASN], &purchase(251), &tac);
    assert_eq!(bad.unwrap_err().status(), Some(Status::VerificationFailed));
    let records: Vec<TacRecord> = (0..200u32)
        .map(|i| {
            let p = purchase(i);
            let tac = p.tac(profile, &dtk).unwrap();
            TacRecord {
                factors: vec![SCHOOL, ASN],
                purchase: if i % 3 == 0 { purchase(i + 1) } else { p },
                tac: tac.to_vec(),
            }
        })
        .collect();
    let checks: Vec<_> = records
        .iter()
        .map(|r| ykt_hsm_sim::TacCheck {
            factors: &r.factors,
            purchase: &r.purchase,
            tac: &r.tac,
        })
        .collect();
    let expected = hsm.verify_purchase_tacs(&mtk, &checks).unwrap();
    assert_eq!(
        client.verify_purchase_tacs(&mtk, records).unwrap(),
        expected
    );
    assert_eq!(expected.iter().filter(|v| !**v).count(), 67);
    let too_many = client.verify_purchase_tacs(
        &mtk,
        vec![TacRecord {
            factors: vec![[0; 8]; 4],
            purchase: good.clone(),
            tac: tac.to_vec(),
        }],
    );
    assert_eq!(too_many.unwrap_err().status(), Some(Status::FactorCount));

    // WRITE KEY and external authentication are deterministic: byte-equal to the engine.
    let (app_master, _) = formed(
        &hsm,
        KeyUsage::AppMaster,
        Modes::DERIVE,
        Exportability::None,
    );
    let (mpk, _) = formed(
        &hsm,
        KeyUsage::Purchase,
        Modes::DERIVE,
        Exportability::DerivedOnly,
    );
    let request = WriteKeyRequest {
        key: &mpk,
        key_factors: &[ASN],
        under: &app_master,
        under_factors: &[ASN],
        challenge: &[1, 2, 3, 4],
        p1: 0x01,
        p2: 0x00,
        record_header: &[0x3E, 0xF0, 0xF1, 0x01, 0x04],
    };
    assert_eq!(
        client.write_key_command(&request).unwrap(),
        hsm.write_key_command(&request).unwrap()
    );
    assert_eq!(
        client
            .external_auth_cryptogram(&app_master, &[ASN], &[7; 8])
            .unwrap(),
        hsm.external_auth_cryptogram(&app_master, &[ASN], &[7; 8])
            .unwrap()
    );

    // Signatures verify under the engine's public key.
    let sign = |algorithm| {
        attrs(
            KeyUsage::Signature,
            algorithm,
            Modes::SIGN,
            Exportability::None,
        )
    };
    let sm2 = hsm.generate_key(sign(KeyAlgorithm::Sm2)).unwrap();
    let public = client.public_key(&sm2.blob).unwrap();
    assert_eq!(sm2.check, KeyCheck::PublicKey(public));
    let signature = client
        .sign_sm2(&sm2.blob, b"audit", b"checkpoint 42")
        .unwrap();
    Sm2PublicKey::from_sec1(&public)
        .unwrap()
        .verify(b"audit", b"checkpoint 42", &signature)
        .unwrap();
    let (p256, check) = client.generate_key(sign(KeyAlgorithm::P256)).unwrap();
    let public = hsm.public_key(&p256).unwrap();
    assert_eq!(check, RemoteKeyCheck::PublicKey(public));
    let signature = client.sign_p256(&p256, b"blacklist v7").unwrap();
    let p256_public = P256PublicKey::from_sec1(&public).unwrap();
    p256_public.verify(b"blacklist v7", &signature).unwrap();

    // Digests computed by the client sign as the messages they were computed from.
    let sm2_public = Sm2PublicKey::from_sec1(&client.public_key(&sm2.blob).unwrap()).unwrap();
    let e = sm2_public.digest(b"audit", b"checkpoint 43").unwrap();
    let signature = client.sign_sm2_digest(&sm2.blob, &e).unwrap();
    sm2_public
        .verify(b"audit", b"checkpoint 43", &signature)
        .unwrap();
    let signature = client
        .sign_p256_digest(&p256, &sha256(b"blacklist v8"))
        .unwrap();
    p256_public.verify(b"blacklist v8", &signature).unwrap();
    let refused = client.sign_p256_digest(&sm2.blob, &e).unwrap_err();
    assert_eq!(refused.status(), Some(Status::Forbidden));

    // An engine refusal arrives with its status and the connection goes on.
    let refused = client.public_key(&blob).unwrap_err();
    assert_eq!(refused.status(), Some(Status::Forbidden));
    assert!(client.kcv(&blob, KcvMethod::Cmac).is_ok());
    let mut bytes = blob.as_bytes().to_vec();
    *bytes.last_mut().unwrap() ^= 1;
    let tampered = KeyBlob::from_bytes(bytes).unwrap();
    let refused = client.kcv(&tampered, KcvMethod::Cmac).unwrap_err();
    assert_eq!(refused.status(), Some(Status::BlobRejected));
}

/// Sends one raw frame (length header computed) and reads one response body.
fn exchange(stream: &mut TcpStream, body: &[u8]) -> Option<Vec<u8>> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame).ok()?;
    read_body(stream)
}

fn read_body(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Status and request ID of a response body.
fn status(body: &[u8]) -> (u8, u32) {
    (body[1], u32::from_be_bytes(body[2..6].try_into().unwrap()))
}

fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    matches!(stream.read(&mut [0u8; 1]), Ok(0) | Err(_))
}

fn raw(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).unwrap()
}

#[test]
fn malformed_frames_are_refused_and_change_nothing() {
    let (hsm, server) = serve();
    let tac_attrs = attrs(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::MAC,
        Exportability::None,
    );
    let key = hsm.generate_key(tac_attrs).unwrap().blob;
    let kcv = hsm.kcv(&key, KcvMethod::Cmac).unwrap();
    let mut stream = raw(server.local_addr());
    let cases: Vec<(Vec<u8>, Status, u32)> = vec![
        (vec![1, 0x10], Status::MalformedFrame, 0),
        (
            vec![9, 0x10, 0, 0, 0, 5, 0, 8],
            Status::UnsupportedVersion,
            5,
        ),
        (vec![1, 0x7F, 0, 0, 0, 6], Status::UnknownCommand, 6),
        // RANDOM with a one-byte length field.
        (vec![1, 0x10, 0, 0, 0, 7, 8], Status::MalformedFrame, 7),
        // RANDOM with trailing bytes.
        (
            vec![1, 0x10, 0, 0, 0, 8, 0, 8, 0],
            Status::MalformedFrame,
            8,
        ),
        // KCV whose blob field claims 200 bytes.
        (
            vec![1, 0x12, 0, 0, 0, 9, 0, 200, 1, 2, 3],
            Status::MalformedFrame,
            9,
        ),
        // VERIFY TACS announcing 10,001 records.
        (
            [
                &[1, 0x22, 0, 0, 0, 10, 0, key.as_bytes().len() as u8][..],
                key.as_bytes(),
                &10_001u32.to_be_bytes(),
            ]
            .concat(),
            Status::BatchTooLarge,
            10,
        ),
        // A blob field that is not a blob, before authentication: no detail is given.
        (
            vec![1, 0x12, 0, 0, 0, 11, 0, 3, 1, 2, 3, 2],
            Status::Unauthenticated,
            11,
        ),
        // A well-formed command before authentication.
        (
            vec![1, 0x10, 0, 0, 0, 12, 0, 8],
            Status::Unauthenticated,
            12,
        ),
    ];
    for (body, expected, id) in cases {
        let reply = exchange(&mut stream, &body).expect("the connection stays usable");
        assert_eq!(status(&reply), (expected as u8, id), "{body:02X?}");
    }
    // A length header beyond the limit: refused, then closed.
    stream.write_all(&(2u32 << 20).to_be_bytes()).unwrap();
    let reply = read_body(&mut stream).unwrap();
    assert_eq!(status(&reply), (Status::FrameTooLarge as u8, 0));
    assert!(closed(&mut stream));
    // A frame cut short: the connection is closed without an answer.
    let mut stream = raw(server.local_addr());
    stream.write_all(&[0, 0, 0, 10, 1, 0x10]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert!(closed(&mut stream));
    // The HSM is untouched: the same key has the same check value through the protocol.
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    assert_eq!(
        client.kcv(&key, KcvMethod::Cmac).unwrap(),
        CheckValue::from(&kcv)
    );
}

#[test]
fn wrong_secrets_and_names_are_refused() {
    let (_hsm, server) = serve();
    for (name, secret) in [("kms", &b"wrong"[..]), ("intruder", SECRET)] {
        assert!(matches!(
            HostClient::connect(server.local_addr(), name, secret),
            Err(HostError::ServerProof)
        ));
    }
    // A client that ignores the server's proof and answers with a wrong one is cut off.
    let mut stream = raw(server.local_addr());
    let hello = [&[1, 0x01, 0, 0, 0, 1, 0, 3][..], b"kms", &[0x55; 32]].concat();
    assert_eq!(status(&exchange(&mut stream, &hello).unwrap()), (0, 1));
    let auth = [&[1, 0x02, 0, 0, 0, 2][..], &[0xAA; 32]].concat();
    assert_eq!(
        status(&exchange(&mut stream, &auth).unwrap()),
        (Status::Unauthenticated as u8, 2)
    );
    assert!(closed(&mut stream));
}

#[test]
fn request_limits_apply_per_connection() {
    let limits = Limits {
        requests_per_second: 1,
        burst: 4,
        ..Limits::default()
    };
    let (_hsm, server) = serve_with(limits);
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    let mut out = [0u8; 8];
    client.random(&mut out).unwrap();
    client.random(&mut out).unwrap();
    let limited = client.random(&mut out).unwrap_err();
    assert_eq!(limited.status(), Some(Status::RateLimited));

    let limits = Limits {
        max_requests: 3,
        ..Limits::default()
    };
    let (_hsm, server) = serve_with(limits);
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    client.random(&mut out).unwrap();
    assert_eq!(
        client.random(&mut out).unwrap_err().status(),
        Some(Status::RateLimited)
    );
    assert!(matches!(client.random(&mut out), Err(HostError::Io(_))));
}

#[test]
fn stop_closes_connections() {
    let (_hsm, mut server) = serve();
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    let mut out = [0u8; 8];
    client.random(&mut out).unwrap();
    server.stop();
    assert!(matches!(client.random(&mut out), Err(HostError::Io(_))));
    assert!(HostClient::connect(server.local_addr(), "kms", SECRET).is_err());
}

fn load(amount: u32) -> Load {
    Load {
        card_random: [0x9A, 0x1B, 0x2C, 0x3D],
        online_seq: 5,
        old_balance: 1000,
        amount,
        transaction_type: transaction_type::EP_LOAD,
        terminal_id: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        date: [0x20, 0x26, 0x05, 0x01],
        time: [0x08, 0x00, 0x00],
    }
}

fn kek(hsm: &Hsm) -> KeyBlob {
    hsm.generate_key(attrs(
        KeyUsage::KeyEncryption,
        KeyAlgorithm::Aes256,
        Modes::ENCRYPT,
        Exportability::None,
    ))
    .unwrap()
    .blob
}

/// The status of a refused link call, with the engine's refusal of the same call.
fn same_refusal<A: std::fmt::Debug, B: std::fmt::Debug>(
    link: Result<A, HostError>,
    engine: Result<B, HsmError>,
) -> Status {
    let status = link.unwrap_err().status().expect("a refusal");
    assert_eq!(status, Status::of_hsm_error(&engine.unwrap_err()));
    status
}

#[test]
fn key_management_commands_match_the_engine() {
    let (hsm, server) = serve();
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    let profile = Profile::YktSm4V1;

    // VERIFY LOAD TAC: a TAC made outside verifies, a flipped bit is refused, as in the engine.
    let (mtk, mtk_clear) = formed(&hsm, KeyUsage::Tac, Modes::DERIVE, Exportability::None);
    let factors = [SCHOOL, ASN];
    let dtk = profile.diversify_path(&mtk_clear, &factors).unwrap();
    let record = load(5000);
    let tac = record.tac(profile, &dtk).unwrap();
    client
        .verify_load_tac(&mtk, &factors, &record, &tac)
        .unwrap();
    hsm.verify_load_tac(&mtk, &factors, &record, &tac).unwrap();
    let mut flipped = tac;
    flipped[2] ^= 0x10;
    assert_eq!(
        same_refusal(
            client.verify_load_tac(&mtk, &factors, &record, &flipped),
            hsm.verify_load_tac(&mtk, &factors, &record, &flipped),
        ),
        Status::VerificationFailed
    );
    let (mlk, _) = formed(&hsm, KeyUsage::Load, Modes::DERIVE, Exportability::None);
    assert_eq!(
        same_refusal(
            client.verify_load_tac(&mlk, &factors, &record, &tac),
            hsm.verify_load_tac(&mlk, &factors, &record, &tac),
        ),
        Status::Forbidden
    );

    // EXPORT KEY: the block carries the key (its padding is random, its header is the
    // engine's).
    let kek = kek(&hsm);
    let (mpk, mpk_clear) = formed(
        &hsm,
        KeyUsage::Purchase,
        Modes::DERIVE,
        Exportability::UnderKek,
    );
    let block = client.export_key(&mpk, &kek).unwrap();
    let engine_block = hsm.export_key(&mpk, &kek).unwrap();
    assert_eq!(block.header(), engine_block.header());
    assert_eq!(block.as_str()[..16], engine_block.as_str()[..16]);
    for block in [&block, &engine_block] {
        let imported = hsm.import_key(block, &kek).unwrap();
        assert_eq!(
            hsm.kcv(&imported, KcvMethod::Cmac).unwrap(),
            Kcv::compute(&mpk_clear, KcvMethod::Cmac)
        );
    }
    assert_eq!(
        same_refusal(client.export_key(&mtk, &kek), hsm.export_key(&mtk, &kek)),
        Status::Forbidden
    );

    // IMPORT KEY: the blob holds the key with the block's attributes.
    let imported = client.import_key(&engine_block, &kek).unwrap();
    assert_eq!(imported.attributes(), mpk.attributes());
    assert_eq!(
        hsm.kcv(&imported, KcvMethod::Cmac).unwrap(),
        hsm.kcv(
            &hsm.import_key(&engine_block, &kek).unwrap(),
            KcvMethod::Cmac
        )
        .unwrap()
    );
    let other_kek = self::kek(&hsm);
    assert_eq!(
        same_refusal(
            client.import_key(&block, &other_kek),
            hsm.import_key(&block, &other_kek),
        ),
        Status::KeyBlockRejected
    );
    let custody = hsm.custody_split(&mtk, 2, 3).unwrap();
    assert_eq!(
        same_refusal(
            client.import_key(&custody.block, &kek),
            hsm.import_key(&custody.block, &kek),
        ),
        Status::Forbidden
    );

    // DESTROY KEY: refused from then on, over the link and in the engine.
    client.destroy_key(&mtk).unwrap();
    assert_eq!(
        same_refusal(
            client.verify_load_tac(&mtk, &factors, &record, &tac),
            hsm.verify_load_tac(&mtk, &factors, &record, &tac),
        ),
        Status::Destroyed
    );
    assert_eq!(
        same_refusal(
            client.kcv(&mtk, KcvMethod::Cmac),
            hsm.kcv(&mtk, KcvMethod::Cmac)
        ),
        Status::Destroyed
    );
    let purchase_record = purchase(250);
    let purchase_tac = purchase_record.tac(profile, &dtk).unwrap();
    let batch = client.verify_purchase_tacs(
        &mtk,
        vec![TacRecord {
            factors: factors.to_vec(),
            purchase: purchase_record,
            tac: purchase_tac.to_vec(),
        }],
    );
    assert_eq!(batch.unwrap_err().status(), Some(Status::Destroyed));
    client.destroy_key(&mtk).unwrap();
    // A foreign blob is not destroyed; an engine destruction shows on the link.
    let foreign = Hsm::new(Lmk::generate().unwrap())
        .generate_key(*mpk.attributes())
        .unwrap()
        .blob;
    assert_eq!(
        same_refusal(client.destroy_key(&foreign), hsm.destroy_key(&foreign)),
        Status::BlobRejected
    );
    hsm.destroy_key(&kek).unwrap();
    let refused = client.export_key(&mpk, &kek).unwrap_err();
    assert_eq!(refused.status(), Some(Status::Destroyed));
    assert!(matches!(
        hsm.import_key(&block, &kek),
        Err(HsmError::Destroyed)
    ));
    // Other keys are untouched.
    assert_eq!(
        client.kcv(&mpk, KcvMethod::Cmac).unwrap(),
        CheckValue::from(&Kcv::compute(&mpk_clear, KcvMethod::Cmac))
    );
}

/// A raw connection through HELLO and AUTH, computing the client proof of [`auth`] here.
///
/// [`auth`]: ykt_hsm_sim::host::auth
fn authenticated(addr: SocketAddr) -> TcpStream {
    use aws_lc_rs::hmac;
    let mut stream = raw(addr);
    let nonce = [0x33u8; 32];
    let hello = [&[1, 0x01, 0, 0, 0, 1, 0, 3][..], b"kms", &nonce].concat();
    let reply = exchange(&mut stream, &hello).unwrap();
    assert_eq!(status(&reply), (0, 1));
    let challenge = &reply[6..38];
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    let message = [&b"ykt-host-v1 client"[..], challenge, &nonce, b"kms"].concat();
    let proof = hmac::sign(&key, &message);
    let auth = [&[1, 0x02, 0, 0, 0, 2][..], proof.as_ref()].concat();
    assert_eq!(status(&exchange(&mut stream, &auth).unwrap()), (0, 2));
    stream
}

/// A request body: header with `command` and `id`, then `fields` in order.
fn request(command: u8, id: u32, fields: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![1, command];
    body.extend_from_slice(&id.to_be_bytes());
    fields.iter().for_each(|f| body.extend_from_slice(f));
    body
}

/// A `var` field.
fn var(bytes: &[u8]) -> Vec<u8> {
    let mut field = (bytes.len() as u16).to_be_bytes().to_vec();
    field.extend_from_slice(bytes);
    field
}

#[test]
fn malformed_key_management_frames_are_refused_and_change_nothing() {
    let (hsm, server) = serve();
    let kek = kek(&hsm);
    let (mpk, mpk_clear) = formed(
        &hsm,
        KeyUsage::Purchase,
        Modes::DERIVE,
        Exportability::UnderKek,
    );
    let (mtk, mtk_clear) = formed(&hsm, KeyUsage::Tac, Modes::DERIVE, Exportability::None);
    let block = hsm.export_key(&mpk, &kek).unwrap();
    let (key, kek_field, block_field) = (
        var(mpk.as_bytes()),
        var(kek.as_bytes()),
        var(block.as_str().as_bytes()),
    );
    let mut corrupted = mpk.as_bytes().to_vec();
    *corrupted.last_mut().unwrap() ^= 1;
    let mut corrupted_kek = kek.as_bytes().to_vec();
    corrupted_kek[10] ^= 1;
    let profile = Profile::YktSm4V1;
    let dtk = profile.diversify_path(&mtk_clear, &[ASN]).unwrap();
    let record = load(42);
    let tac = record.tac(profile, &dtk).unwrap();
    let load_field = [
        &record.card_random[..],
        &record.online_seq.to_be_bytes(),
        &record.old_balance.to_be_bytes(),
        &record.amount.to_be_bytes(),
        &[record.transaction_type],
        &record.terminal_id,
        &record.date,
        &record.time,
    ]
    .concat();
    let mtk_field = var(mtk.as_bytes());
    let one_factor = [&[1][..], &ASN].concat();

    // Before authentication: grammar failures are told, anything else is 83.
    let mut stream = raw(server.local_addr());
    for (body, expected) in [
        (request(0x16, 20, &[&[0, 200, 1]]), Status::MalformedFrame),
        (request(0x16, 21, &[&key]), Status::Unauthenticated),
        (
            request(0x15, 22, &[&block_field, &kek_field]),
            Status::Unauthenticated,
        ),
        (
            request(0x14, 23, &[&key, &kek_field]),
            Status::Unauthenticated,
        ),
    ] {
        let id = u32::from_be_bytes(body[2..6].try_into().unwrap());
        let reply = exchange(&mut stream, &body).expect("the connection stays usable");
        assert_eq!(status(&reply), (expected as u8, id), "{body:02X?}");
    }

    let mut stream = authenticated(server.local_addr());
    let cases: Vec<(Vec<u8>, Status)> = vec![
        // DESTROY KEY: blob field past the end, trailing byte, not a blob, not this LMK's.
        (
            request(0x16, 30, &[&[0, 200, 1, 2]]),
            Status::MalformedFrame,
        ),
        (request(0x16, 31, &[&key, &[0]]), Status::MalformedFrame),
        (
            request(0x16, 32, &[&var(&[1, 2, 3])]),
            Status::MalformedBlob,
        ),
        (request(0x16, 33, &[&var(&corrupted)]), Status::BlobRejected),
        (request(0x16, 34, &[]), Status::MalformedFrame),
        // EXPORT KEY: the KEK missing, or not a blob.
        (request(0x14, 40, &[&key]), Status::MalformedFrame),
        (
            request(0x14, 41, &[&key, &var(&[9; 10])]),
            Status::MalformedBlob,
        ),
        (
            request(0x14, 42, &[&key, &kek_field, &[0]]),
            Status::MalformedFrame,
        ),
        // IMPORT KEY: text that is no key block, bytes that are no text, the KEK missing.
        (
            request(
                0x15,
                50,
                &[&var(&block.as_str().as_bytes()[1..]), &kek_field],
            ),
            Status::MalformedKeyBlock,
        ),
        (
            request(0x15, 51, &[&var(&[0xFF; 144]), &kek_field]),
            Status::MalformedKeyBlock,
        ),
        (request(0x15, 52, &[&block_field]), Status::MalformedFrame),
        (
            request(0x15, 53, &[&block_field, &var(&corrupted_kek)]),
            Status::BlobRejected,
        ),
        // VERIFY LOAD TAC: load cut short, TAC missing, trailing byte, too many factors.
        (
            request(0x23, 60, &[&mtk_field, &one_factor, &load_field[..27]]),
            Status::MalformedFrame,
        ),
        (
            request(0x23, 61, &[&mtk_field, &one_factor, &load_field]),
            Status::MalformedFrame,
        ),
        (
            request(
                0x23,
                62,
                &[&mtk_field, &one_factor, &load_field, &var(&tac), &[0]],
            ),
            Status::MalformedFrame,
        ),
        (
            request(
                0x23,
                63,
                &[&mtk_field, &[4], &[0; 32], &load_field, &var(&tac)],
            ),
            Status::FactorCount,
        ),
    ];
    for (body, expected) in cases {
        let id = u32::from_be_bytes(body[2..6].try_into().unwrap());
        let reply = exchange(&mut stream, &body).expect("the connection stays usable");
        assert_eq!(status(&reply), (expected as u8, id), "{body:02X?}");
    }
    // The well-formed frames are answered on the same connection.
    let reply = exchange(
        &mut stream,
        &request(
            0x23,
            70,
            &[&mtk_field, &one_factor, &load_field, &var(&tac)],
        ),
    )
    .unwrap();
    assert_eq!(status(&reply), (0, 70));

    // Nothing was destroyed, exported under another key or changed.
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    assert_eq!(
        client.kcv(&mpk, KcvMethod::Cmac).unwrap(),
        CheckValue::from(&Kcv::compute(&mpk_clear, KcvMethod::Cmac))
    );
    client.verify_load_tac(&mtk, &[ASN], &record, &tac).unwrap();
    hsm.kcv(&kek, KcvMethod::Cmac).unwrap();
    let imported = client.import_key(&block, &kek).unwrap();
    assert_eq!(
        hsm.kcv(&imported, KcvMethod::Cmac).unwrap(),
        Kcv::compute(&mpk_clear, KcvMethod::Cmac)
    );
}

#[test]
fn digest_fields_must_hold_32_bytes() {
    let (hsm, server) = serve();
    let sign = |algorithm| {
        hsm.generate_key(attrs(
            KeyUsage::Signature,
            algorithm,
            Modes::SIGN,
            Exportability::None,
        ))
        .unwrap()
        .blob
    };
    let (sm2, p256) = (sign(KeyAlgorithm::Sm2), sign(KeyAlgorithm::P256));
    let (sm2_field, p256_field) = (var(sm2.as_bytes()), var(p256.as_bytes()));
    let sm2_public = Sm2PublicKey::from_sec1(&hsm.public_key(&sm2).unwrap()).unwrap();
    let e = sm2_public.digest(b"ykt-kms", b"platform record").unwrap();
    let digest = sha256(b"platform record");

    let mut stream = authenticated(server.local_addr());
    let mut id = 10;
    for (command, key, good) in [(0x43, &sm2_field, &e), (0x44, &p256_field, &digest)] {
        // Another length keeps the grammar: refused with the crypto status, naming the field
        // and the length given; the connection goes on.
        for (len, field) in [
            (0, &[][..]),
            (31, &good[..31]),
            (33, &[&good[..], &[0]].concat()[..]),
        ] {
            id += 1;
            let reply = exchange(&mut stream, &request(command, id, &[key, &var(field)])).unwrap();
            assert_eq!(
                status(&reply),
                (Status::Crypto as u8, id),
                "{command:#04x} {len}"
            );
            let message = String::from_utf8_lossy(&reply[8..]).into_owned();
            assert!(message.contains("digest"), "{message}");
            assert!(message.contains(&format!("got {len} bytes")), "{message}");
        }
        // Grammar failures: the field past the end, a trailing byte, no field.
        for body in [
            request(command, id + 1, &[key, &[0, 32], &good[..31]]),
            request(command, id + 1, &[key, &var(good), &[0]]),
            request(command, id + 1, &[key]),
        ] {
            let reply = exchange(&mut stream, &body).unwrap();
            assert_eq!(status(&reply), (Status::MalformedFrame as u8, id + 1));
        }
        // Thirty-two bytes are signed on the same connection.
        id += 2;
        let reply = exchange(&mut stream, &request(command, id, &[key, &var(good)])).unwrap();
        assert_eq!(status(&reply), (0, id));
        assert_eq!(reply.len(), 6 + 64);
    }

    // Through the client, the signatures verify over the messages.
    let mut client = HostClient::connect(server.local_addr(), "kms", SECRET).unwrap();
    let signature = client.sign_sm2_digest(&sm2, &e).unwrap();
    sm2_public
        .verify(b"ykt-kms", b"platform record", &signature)
        .unwrap();
    let signature = client.sign_p256_digest(&p256, &digest).unwrap();
    P256PublicKey::from_sec1(&hsm.public_key(&p256).unwrap())
        .unwrap()
        .verify(b"platform record", &signature)
        .unwrap();

    // Before authentication the commands are refused like any other.
    let mut stream = raw(server.local_addr());
    let reply = exchange(
        &mut stream,
        &request(0x44, 99, &[&p256_field, &var(&digest)]),
    )
    .unwrap();
    assert_eq!(status(&reply), (Status::Unauthenticated as u8, 99));
}
