//! Criterion benchmarks of the hot primitives (the same operations `ykt bench crypto` times).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use ykt_crypto::sm2::{DEFAULT_ID, Sm2PrivateKey};
use ykt_crypto::{
    BlockCipher, Diversifier, Profile, Purchase, SymmetricAlgorithm, SymmetricKey,
    p256::P256PrivateKey,
};

fn purchase() -> Purchase {
    Purchase {
        card_random: [1, 2, 3, 4],
        offline_seq: 7,
        amount: 150,
        transaction_type: 6,
        terminal_id: [0, 0x11, 0x22, 0x33, 0x44, 0x55],
        terminal_seq: 42,
        date: [0x20, 0x26, 0x11, 0x23],
        time: [0x12, 0x00, 0x00],
    }
}

fn block_ciphers(c: &mut Criterion) {
    for alg in [
        SymmetricAlgorithm::Sm4,
        SymmetricAlgorithm::TripleDes,
        SymmetricAlgorithm::Des,
    ] {
        let cipher = BlockCipher::new(&SymmetricKey::new(alg, &vec![0x5A; alg.key_len()]).unwrap());
        let mut block = vec![0u8; alg.block_len()];
        c.bench_function(&format!("{alg} encrypt block"), |b| {
            b.iter(|| cipher.encrypt_block(black_box(&mut block)).unwrap())
        });
    }
}

fn tac_verify(c: &mut Criterion) {
    for (profile, alg) in [
        (Profile::PbocDes, SymmetricAlgorithm::TripleDes),
        (Profile::YktSm4V1, SymmetricAlgorithm::Sm4),
    ] {
        let mtk = SymmetricKey::new(alg, &[0x3C; 16]).unwrap();
        let school = Diversifier::new(profile, &mtk).unwrap();
        let record = purchase();
        let asn = [0x20, 0x26, 0, 0, 0, 0, 0x10, 0x01];
        let tac = record.tac(profile, &school.derive(&asn)).unwrap();
        c.bench_function(&format!("{alg} diversify + purchase TAC verify"), |b| {
            b.iter(|| {
                let dtk = school.derive(black_box(&asn));
                record.verify_tac(profile, &dtk, black_box(&tac)).unwrap()
            })
        });
    }
}

fn signatures(c: &mut Criterion) {
    let sm2 = Sm2PrivateKey::generate().unwrap();
    let digest = sm2.public_key().digest(DEFAULT_ID, b"ykt").unwrap();
    let sig = sm2.sign_digest(&digest).unwrap();
    c.bench_function("sm2 sign", |b| {
        b.iter(|| sm2.sign_digest(black_box(&digest)).unwrap())
    });
    c.bench_function("sm2 verify", |b| {
        b.iter(|| {
            sm2.public_key()
                .verify_digest(black_box(&digest), &sig)
                .unwrap()
        })
    });
    let p256 = P256PrivateKey::generate().unwrap();
    let sig = p256.sign(b"ykt").unwrap();
    c.bench_function("p256 sign", |b| {
        b.iter(|| p256.sign(black_box(b"ykt")).unwrap())
    });
    c.bench_function("p256 verify", |b| {
        b.iter(|| p256.public_key().verify(black_box(b"ykt"), &sig).unwrap())
    });
}

criterion_group!(benches, block_ciphers, tac_verify, signatures);
criterion_main!(benches);
