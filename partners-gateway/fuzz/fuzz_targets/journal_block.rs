//! Journal block decoding: any bytes, as a stored journal value (a block or a part of a large
//! transaction), fed to the assembler and decoded; an error is fine, a panic is not. A value
//! that decodes is encoded again and must decode to the same transactions.
#![no_main]

use ledger::codec::{Assembler, Block, BlockWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut a = Assembler::default();
    // Several values in a row, split at 0xFF 0xFE (parts must follow each other).
    for value in data.split(|b| *b == 0xFE) {
        let _ = a.transactions(value);
    }
    if let Ok(block) = Block::parse(data) {
        if let Ok(txs) = block.all() {
            let mut w = BlockWriter::default();
            for tx in &txs {
                w.push(tx);
            }
            let mut again = Vec::new();
            let mut b = Assembler::default();
            for v in w.finish() {
                again.extend(b.transactions(&v).expect("a written block reads back"));
            }
            assert_eq!(again, txs, "decode, encode, decode is the identity");
        }
    }
});
