//! What the wire does to segments: loss (Bernoulli or Gilbert-Elliott bursts, per
//! direction and per segment kind) and one-way delay with jitter.
//!
//! Drivers own the random source and pass it in; the same seed gives the same
//! drops. Reordering follows from jitter: each segment draws its own delay.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

use teardown_engine::segment::Segment;

/// Which segments the loss applies to (`--loss-only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossOnly {
    /// Every segment.
    Any,
    /// Segments carrying FIN.
    Fin,
    /// Pure ACKs (no SYN, FIN, RST or payload).
    Ack,
}

impl LossOnly {
    pub fn applies(self, seg: &Segment) -> bool {
        match self {
            LossOnly::Any => true,
            LossOnly::Fin => seg.flags.fin(),
            LossOnly::Ack => {
                seg.flags.ack()
                    && !seg.flags.syn()
                    && !seg.flags.fin()
                    && !seg.flags.rst()
                    && seg.len == 0
            }
        }
    }
}

impl FromStr for LossOnly {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "any" => Ok(LossOnly::Any),
            "fin" => Ok(LossOnly::Fin),
            "ack" => Ok(LossOnly::Ack),
            _ => Err(format!(
                "unknown segment kind '{s}' (expected fin, ack or any)"
            )),
        }
    }
}

impl fmt::Display for LossOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossOnly::Any => "any",
            LossOnly::Fin => "fin",
            LossOnly::Ack => "ack",
        })
    }
}

/// The shape of the loss process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossModel {
    /// Each segment lost independently with probability `p`.
    Bernoulli,
    /// Gilbert-Elliott: a two-state Markov chain, every segment lost in the bad
    /// state and none in the good one, tuned so the long-run loss is `p` and bad
    /// runs last `burst` segments on average.
    Burst { burst: f64 },
}

/// A loss process for one direction of one link.
#[derive(Clone, Debug)]
pub struct Loss {
    p: f64,
    model: LossModel,
    only: LossOnly,
    /// `p` as a [`Chance`] (Bernoulli); the Gilbert-Elliott transition
    /// probabilities good->bad and bad->good.
    lose: Chance,
    p_gb: Chance,
    p_bg: Chance,
    bad: bool,
    /// The common case, settled once: a Bernoulli loss above zero on every
    /// segment, so a segment's loss is one draw with no test of the rate,
    /// the filter and the model first (some 5 instructions a segment).
    plain: bool,
}

/// A probability `p` in [0, 1] as the draw that comes out below it:
/// `rng.gen::<f64>() < p`, with the same random bits and the same answer,
/// but compared as integers. rand's `f64` is the draw's top 53 bits `x`
/// times 2^-53, exactly, so it is below `p` when `x < p * 2^53`, that is
/// when `x < ceil(p * 2^53)` (both sides exact: scaling by a power of two
/// is). Saves the int-to-float conversion on every segment's draw.
#[derive(Clone, Copy, Debug)]
struct Chance(u64);

impl Chance {
    fn new(p: f64) -> Chance {
        Chance((p * (1u64 << 53) as f64).ceil() as u64)
    }

    #[inline(always)]
    fn draw<R: Rng + ?Sized>(self, rng: &mut R) -> bool {
        (rng.next_u64() >> 11) < self.0
    }
}

impl Loss {
    /// `p` in [0, 1); `burst` >= 1 for the burst model.
    pub fn new(p: f64, model: LossModel, only: LossOnly) -> Result<Loss, String> {
        if !(0.0..1.0).contains(&p) {
            return Err(format!("loss must be in [0, 1), got {p}"));
        }
        let (p_gb, p_bg) = match model {
            LossModel::Bernoulli => (0.0, 1.0),
            LossModel::Burst { burst } => {
                if !(burst >= 1.0 && burst.is_finite()) {
                    return Err(format!("mean burst length must be >= 1, got {burst}"));
                }
                let p_bg = 1.0 / burst;
                // Stationary share of the bad state: p_gb / (p_gb + p_bg) = p.
                (p * p_bg / (1.0 - p), p_bg)
            }
        };
        Ok(Loss {
            p,
            model,
            only,
            lose: Chance::new(p),
            p_gb: Chance::new(p_gb),
            p_bg: Chance::new(p_bg),
            bad: false,
            plain: p > 0.0 && model == LossModel::Bernoulli && only == LossOnly::Any,
        })
    }

    pub fn none() -> Loss {
        Loss::new(0.0, LossModel::Bernoulli, LossOnly::Any).expect("zero loss is valid")
    }

    pub fn rate(&self) -> f64 {
        self.p
    }

    /// Whether `seg` is lost. Draws from `rng` only when the segment is of the kind
    /// the loss applies to and the rate is above zero, so a lossless run consumes
    /// no randomness. Pinned inline: called once per segment in the
    /// simulator's transmit loop, where whether the compiler inlined it
    /// flipped with code layout (~200 instructions a teardown as a call).
    #[inline(always)]
    pub fn drops<R: Rng + ?Sized>(&mut self, rng: &mut R, seg: &Segment) -> bool {
        if self.plain {
            return self.lose.draw(rng);
        }
        if self.p == 0.0 || !self.only.applies(seg) {
            return false;
        }
        match self.model {
            LossModel::Bernoulli => self.lose.draw(rng),
            LossModel::Burst { .. } => {
                let flip = if self.bad { self.p_bg } else { self.p_gb };
                if flip.draw(rng) {
                    self.bad = !self.bad;
                }
                self.bad
            }
        }
    }
}

/// One-way delay with uniform jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    pub base: Duration,
    pub jitter: Duration,
}

impl Delay {
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        let j = rng.gen_range(0..=self.jitter.as_micros() as u64);
        self.base + Duration::from_micros(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use teardown_engine::segment::Flags;
    use teardown_engine::tuple::Tuple;

    fn seg(flags: Flags) -> Segment {
        Segment::new(&Tuple::default(), flags, 0, 0, 0, 0)
    }

    #[test]
    fn bernoulli_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut l = Loss::new(0.1, LossModel::Bernoulli, LossOnly::Any).unwrap();
        let n = 200_000;
        let lost = (0..n)
            .filter(|_| l.drops(&mut rng, &seg(Flags::ACK)))
            .count();
        let rate = lost as f64 / n as f64;
        assert!((0.095..0.105).contains(&rate), "{rate}");
    }

    #[test]
    fn burst_rate_and_run_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut l = Loss::new(0.05, LossModel::Burst { burst: 4.0 }, LossOnly::Any).unwrap();
        let n = 400_000;
        let (mut lost, mut runs, mut prev) = (0, 0, false);
        for _ in 0..n {
            let d = l.drops(&mut rng, &seg(Flags::ACK));
            lost += d as usize;
            runs += (d && !prev) as usize;
            prev = d;
        }
        let rate = lost as f64 / n as f64;
        let mean_run = lost as f64 / runs as f64;
        assert!((0.045..0.055).contains(&rate), "{rate}");
        assert!((3.6..4.4).contains(&mean_run), "{mean_run}");
    }

    /// The settled common case draws exactly as the tests it skips would:
    /// the same answers from the same stream, left at the same place; and a
    /// rate of zero, or a filter, or the burst model is never settled.
    #[test]
    fn plain_loss_draws_as_the_general_path() {
        let l = Loss::new(0.3, LossModel::Bernoulli, LossOnly::Any).unwrap();
        assert!(l.plain);
        let (mut fast, mut slow) = (l.clone(), Loss { plain: false, ..l });
        let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(7), ChaCha8Rng::seed_from_u64(7));
        for f in [Flags::ACK, Flags::FIN | Flags::ACK, Flags::SYN, Flags::RST] {
            for _ in 0..1000 {
                assert_eq!(fast.drops(&mut r1, &seg(f)), slow.drops(&mut r2, &seg(f)));
            }
        }
        assert_eq!(r1.gen::<u64>(), r2.gen::<u64>());
        assert!(!Loss::none().plain);
        assert!(
            !Loss::new(0.3, LossModel::Bernoulli, LossOnly::Fin)
                .unwrap()
                .plain
        );
        let burst = LossModel::Burst { burst: 2.0 };
        assert!(!Loss::new(0.3, burst, LossOnly::Any).unwrap().plain);
    }

    #[test]
    fn only_filters_kinds() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut l = Loss::new(0.99, LossModel::Bernoulli, LossOnly::Fin).unwrap();
        assert!((0..100).all(|_| !l.drops(&mut rng, &seg(Flags::ACK))));
        assert!(
            (0..100)
                .filter(|_| l.drops(&mut rng, &seg(Flags::FIN | Flags::ACK)))
                .count()
                > 90
        );
        let a = Loss::new(0.5, LossModel::Bernoulli, LossOnly::Ack).unwrap();
        assert!(!a.only.applies(&seg(Flags::FIN | Flags::ACK)));
        assert!(a.only.applies(&seg(Flags::ACK)));
    }

    /// A chance drawn is `gen::<f64>() < p` on the same stream, also at the
    /// edges: probabilities a hair either side of a draw's own value.
    #[test]
    fn a_chance_is_the_float_draw() {
        let mut ps = vec![0.0, 1e-300, 0.01, 0.1, 1.0 / 3.0, 0.5, 0.999, 1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..64 {
            let x: f64 = rng.gen();
            ps.extend([x, x.next_down(), x.next_up()]);
        }
        for p in ps {
            let chance = Chance::new(p);
            let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(6), ChaCha8Rng::seed_from_u64(6));
            for _ in 0..2_000 {
                assert_eq!(chance.draw(&mut a), b.gen::<f64>() < p, "p = {p}");
            }
        }
        // Both sides of one draw's own value: below it misses, above it hits.
        let x = ChaCha8Rng::seed_from_u64(7).gen::<f64>();
        assert!(!Chance::new(x).draw(&mut ChaCha8Rng::seed_from_u64(7)));
        assert!(Chance::new(x.next_up()).draw(&mut ChaCha8Rng::seed_from_u64(7)));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Loss::new(1.0, LossModel::Bernoulli, LossOnly::Any).is_err());
        assert!(Loss::new(-0.1, LossModel::Bernoulli, LossOnly::Any).is_err());
        assert!(Loss::new(0.1, LossModel::Burst { burst: 0.5 }, LossOnly::Any).is_err());
    }
}
