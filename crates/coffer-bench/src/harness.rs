//! Measurement: each case runs its Coffer path and its reference path in alternating rounds
//! of fixed length, so that a machine whose speed drifts slows both alike; the median
//! rate of each side is reported with their ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// One operation to measure, through Coffer and through the reference.
pub struct Case {
    pub name: String,
    pub coffer: Box<dyn FnMut()>,
    pub reference: Box<dyn FnMut()>,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        coffer: impl FnMut() + 'static,
        reference: impl FnMut() + 'static,
    ) -> Self {
        Case { name: name.into(), coffer: Box::new(coffer), reference: Box::new(reference) }
    }
}

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub round: Duration,
    pub rounds: usize,
}

/// The rates measured for one case.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub coffer_ops: f64,
    pub reference_ops: f64,
}

impl Outcome {
    pub fn ratio(&self) -> f64 {
        self.coffer_ops / self.reference_ops
    }
}

/// Calls `f` repeatedly for about `round` and returns calls per second.
fn rate(f: &mut dyn FnMut(), round: Duration) -> f64 {
    // Batches amortise the clock read; a batch grows until it takes about a millisecond.
    let mut batch = 1u64;
    let mut calls = 0u64;
    let start = Instant::now();
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(&mut *f)();
        }
        calls += batch;
        if t.elapsed() < Duration::from_micros(500) {
            batch *= 2;
        }
        let elapsed = start.elapsed();
        if elapsed >= round {
            return calls as f64 / elapsed.as_secs_f64();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures a case: warm-up, then `rounds` alternating rounds of each side.
pub fn measure(case: &mut Case, plan: Plan) -> Outcome {
    rate(&mut case.coffer, plan.round / 4);
    rate(&mut case.reference, plan.round / 4);
    let (mut c, mut r) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        c.push(rate(&mut case.coffer, plan.round));
        r.push(rate(&mut case.reference, plan.round));
    }
    Outcome { coffer_ops: median(c), reference_ops: median(r) }
}

/// Prints the table header.
pub fn print_header(reference: &str) {
    println!("{:<44} {:>14} {:>14} {:>7}", "case", "coffer ops/s", format!("{reference} ops/s"), "ratio");
}

/// Prints one row.
pub fn print_row(name: &str, o: &Outcome) {
    println!("{:<44} {:>14.0} {:>14.0} {:>7.3}", name, o.coffer_ops, o.reference_ops, o.ratio());
}
