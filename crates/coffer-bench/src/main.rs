//! `coffer-bench`: Coffer's benchmarks. Each suite measures Coffer beside a reference in the
//! same run and prints the ratio, so the figures can be compared across machines.
//!
//! ```text
//! coffer-bench core [--round-ms MS] [--rounds N] [--filter TEXT]
//! coffer-bench hsm [--max-objects N]
//! coffer-bench sdk [--secs S]
//! coffer-bench cluster [--secs S] [--catch-up N,N,...]
//! coffer-bench pkcs11 [--module PATH]... [--secs S]
//! ```
//!
//! `pkcs11-module` is internal: the `pkcs11` suite runs itself with it to measure one
//! module in a child process.
#![forbid(unsafe_code)]

mod cluster;
mod core;
mod harness;
mod hsm;
mod pkcs11;
mod sdk;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use coffer_crypto::Module;

use harness::Plan;

struct Args {
    suite: String,
    plan: Plan,
    filter: Option<String>,
    max_objects: usize,
    /// Measurement time per side and case of the `sdk` and `pkcs11` suites.
    secs: Duration,
    /// The PKCS#11 modules of the `pkcs11` suite (its defaults when empty).
    modules: Vec<PathBuf>,
    /// Cluster sizes (token keys) at which the `cluster` suite times a new node's catch-up.
    catch_up: Vec<usize>,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let suite = args.next().unwrap_or_else(|| "core".to_string());
    let mut plan = Plan { round: Duration::from_millis(200), rounds: 3 };
    let mut filter = None;
    let mut max_objects = 1_000_000;
    let mut secs = Duration::from_secs(2);
    let mut modules = Vec::new();
    let mut catch_up = vec![1_000, 10_000];
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--round-ms" => plan.round = Duration::from_millis(value()?.parse().context("--round-ms")?),
            "--rounds" => plan.rounds = value()?.parse().context("--rounds")?,
            "--filter" => filter = Some(value()?),
            "--max-objects" => max_objects = value()?.parse().context("--max-objects")?,
            "--secs" => secs = parse_secs(&value()?)?,
            "--module" => modules.push(PathBuf::from(value()?)),
            "--catch-up" => {
                catch_up = value()?
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--catch-up takes key counts separated by commas")?;
            }
            other => bail!(
                "unknown option {other}; usage: coffer-bench core [--round-ms MS] [--rounds N] [--filter TEXT] | hsm [--max-objects N] | sdk [--secs S] | cluster [--secs S] [--catch-up N,N,...] | pkcs11 [--module PATH]... [--secs S]"
            ),
        }
    }
    if plan.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    catch_up.sort_unstable();
    Ok(Args { suite, plan, filter, max_objects, secs, modules, catch_up })
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn parse_secs(text: &str) -> Result<Duration> {
    let secs: f64 = text.parse().context("--secs")?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => bail!("--secs must be a positive number of seconds, not {text}"),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    match args.suite.as_str() {
        "core" => run_core(&args),
        "hsm" => hsm::run(args.max_objects),
        "sdk" => sdk::run(args.secs),
        "cluster" => cluster::run(args.secs, &args.catch_up),
        "pkcs11" => pkcs11::run(&args.modules, args.secs),
        "pkcs11-module" => match args.modules.as_slice() {
            [module] => pkcs11::run_module(module, args.secs),
            _ => bail!("pkcs11-module measures exactly one --module"),
        },
        other => bail!("unknown suite {other}; suites: core, hsm, sdk, cluster, pkcs11"),
    }
}

/// Powers the module on (running its self-tests), then measures every mechanism.
fn run_core(args: &Args) -> Result<()> {
    let start = Instant::now();
    let module = Module::power_on();
    let took = start.elapsed();
    match module.status() {
        Ok(()) => println!("power-on self-tests: passed in {:.1} ms", took.as_secs_f64() * 1e3),
        Err(e) => bail!("power-on self-tests failed: {e}"),
    }
    if cfg!(debug_assertions) {
        println!("note: debug build; run with --release for meaningful figures");
    }
    let mut cases = core::cases(&module)?;
    println!(
        "each case: {} alternating rounds of {} ms per side; median rates\n",
        args.plan.rounds,
        args.plan.round.as_millis()
    );
    harness::print_header("aws-lc-rs");
    let mut ratios = Vec::new();
    for case in cases.iter_mut() {
        if args.filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let outcome = harness::measure(case, args.plan);
        harness::print_row(&case.name, &outcome);
        ratios.push(outcome.ratio());
    }
    if !ratios.is_empty() {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "\n{} cases; ratio coffer/aws-lc-rs: geometric mean {geomean:.3}, lowest {min:.3}",
            ratios.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_must_be_a_positive_duration() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_secs("2").unwrap(), Duration::from_secs(2));
        for bad in ["0", "-1", "NaN", "inf", "two"] {
            assert!(parse_secs(bad).is_err(), "{bad} accepted");
        }
    }
}
