//! The script fuzz harness (`teardown::fuzzing::script`, also a cargo-fuzz
//! target) on random text and on corpus scripts with random edits.

use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("tests/scripts")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "[ -~\n\t]{0,400}") {
        teardown::fuzzing::script(s.as_bytes());
    }

    #[test]
    fn edited_corpus_scripts_never_panic(pick in any::<prop::sample::Index>(),
                                         at in any::<prop::sample::Index>(),
                                         cut in 0usize..40,
                                         insert in "[ -~\n]{0,12}") {
        let all = corpus();
        let src = pick.get(&all);
        let mut bytes = src.as_bytes().to_vec();
        let i = at.index(bytes.len().max(1)).min(bytes.len());
        let j = (i + cut).min(bytes.len());
        bytes.splice(i..j, insert.bytes());
        teardown::fuzzing::script(&bytes);
    }
}
