//! `cargo xtask scaling`: a discrete-event simulation of the write path at
//! loads we cannot produce on this machine, to find what breaks first.
//!
//! Why a simulation: the machine has 2 cores, so 10× and 100× today's load
//! can only be measured on paper. The model is the write path as it is
//! built (see `docs/scaling.md`): a change takes a host core (HTTP, auth,
//! JSON), then the lock of its agency tree, reads the tree's facts on the
//! database, decides on a host core (the module's cost grows with the tree
//! it is handed), writes the change and its audit row, waits for the commit
//! to be durable and only then lets the lock go. Every resource is a FIFO
//! queue: host cores per host, database cores, one lock per tree. The costs
//! are inputs (`--flag value`), their defaults measured on this machine and
//! named in `docs/scaling.md`; the simulation is seeded and deterministic.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One simulated deployment and its load.
#[derive(Debug, Clone)]
struct Params {
    hosts: usize,
    cores_per_host: usize,
    db_cores: usize,
    trees: usize,
    /// One writer lock for every tree (SQLite) instead of one per tree.
    one_writer: bool,
    /// Members in one agency tree (what a decision loads and reads).
    tree_members: f64,
    /// Offered changes per second, Poisson.
    rate: f64,
    /// Zipf exponent of traffic over trees (0: uniform; large: one tree).
    skew: f64,
    seconds: f64,
    /// Host CPU per change outside the lock (HTTP, auth, JSON), µs.
    host_us: f64,
    /// Module decision: fixed µs plus µs per member of the tree.
    decide_us: f64,
    decide_us_per_member: f64,
    /// Database CPU to read the tree's facts: fixed plus per member, µs.
    read_us: f64,
    read_us_per_member: f64,
    /// Database CPU to write the change, its audit row and outbox, µs.
    write_us: f64,
    /// Commit latency (WAL flush), µs: the lock is held, no CPU is.
    commit_us: f64,
}

impl Default for Params {
    fn default() -> Params {
        // Defaults: docs/scaling.md says where each figure was measured.
        Params {
            hosts: 1,
            cores_per_host: 2,
            db_cores: 2,
            trees: 100,
            one_writer: false,
            tree_members: 12.0,
            rate: 1_000.0,
            skew: 0.0,
            seconds: 2.0,
            host_us: 450.0,
            decide_us: 60.0,
            decide_us_per_member: 12.5,
            read_us: 120.0,
            read_us_per_member: 6.0,
            write_us: 150.0,
            commit_us: 490.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Res {
    Host(usize),
    Db,
    Lock(usize),
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Acquire(Res),
    Hold(f64),
    Release(Res),
    Done,
}

/// A FIFO multi-server resource.
struct Queue {
    free: usize,
    waiting: VecDeque<usize>,
    busy_since: Vec<f64>,
    busy: f64,
}

impl Queue {
    fn new(servers: usize) -> Queue {
        Queue {
            free: servers,
            waiting: VecDeque::new(),
            busy_since: Vec::new(),
            busy: 0.0,
        }
    }
}

struct Sim {
    p: Params,
    hosts: Vec<Queue>,
    db: Queue,
    locks: Vec<Queue>,
    /// (time µs, seq, change): the change takes its next step then.
    events: BinaryHeap<Reverse<(u64, u64, usize)>>,
    seq: u64,
    plans: Vec<Vec<Step>>,
    at: Vec<usize>,
    arrived: Vec<f64>,
    latencies: Vec<f64>,
    now: f64,
}

/// What one run measured.
struct Outcome {
    completed_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    host_util: f64,
    db_util: f64,
    hottest_lock_util: f64,
    backlog: usize,
}

impl Sim {
    fn queue(&mut self, r: Res) -> &mut Queue {
        match r {
            Res::Host(h) => &mut self.hosts[h],
            Res::Db => &mut self.db,
            Res::Lock(t) => &mut self.locks[t],
        }
    }

    fn schedule(&mut self, at: f64, change: usize) {
        self.seq += 1;
        // Nanosecond ticks keep the heap's order exact.
        self.events
            .push(Reverse(((at * 1_000.0) as u64, self.seq, change)));
    }

    /// Runs `change` from its current step until it waits or finishes.
    fn advance(&mut self, change: usize) {
        loop {
            let step = self.plans[change][self.at[change]];
            self.at[change] += 1;
            match step {
                Step::Acquire(r) => {
                    let now = self.now;
                    let q = self.queue(r);
                    if q.free > 0 {
                        q.free -= 1;
                        q.busy_since.push(now);
                    } else {
                        q.waiting.push_back(change);
                        return;
                    }
                }
                Step::Hold(us) => {
                    self.schedule(self.now + us, change);
                    return;
                }
                Step::Release(r) => {
                    let now = self.now;
                    let q = self.queue(r);
                    if let Some(since) = q.busy_since.pop() {
                        q.busy += now - since;
                    }
                    if let Some(next) = q.waiting.pop_front() {
                        q.busy_since.push(now);
                        self.schedule(now, next);
                    } else {
                        q.free += 1;
                    }
                }
                Step::Done => {
                    self.latencies.push(self.now - self.arrived[change]);
                    return;
                }
            }
        }
    }
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|i| 1.0 / (i as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

fn simulate(p: &Params, seed: u64) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let cdf = zipf_cdf(p.trees, p.skew);
    let horizon = p.seconds * 1e6;
    let mut sim = Sim {
        p: p.clone(),
        hosts: (0..p.hosts).map(|_| Queue::new(p.cores_per_host)).collect(),
        db: Queue::new(p.db_cores),
        locks: (0..if p.one_writer { 1 } else { p.trees })
            .map(|_| Queue::new(1))
            .collect(),
        events: BinaryHeap::new(),
        seq: 0,
        plans: Vec::new(),
        at: Vec::new(),
        arrived: Vec::new(),
        latencies: Vec::new(),
        now: 0.0,
    };
    let m = p.tree_members;
    let mut t = 0.0;
    let mut i = 0;
    loop {
        t += -(1.0 - rng.random::<f64>()).ln() / p.rate * 1e6;
        if t >= horizon {
            break;
        }
        let u: f64 = rng.random();
        let tree = cdf.partition_point(|c| *c < u).min(p.trees - 1);
        let host = Res::Host(i % p.hosts);
        let lock = Res::Lock(if p.one_writer { 0 } else { tree });
        sim.plans.push(vec![
            Step::Acquire(host),
            Step::Hold(p.host_us),
            Step::Release(host),
            Step::Acquire(lock),
            Step::Acquire(Res::Db),
            Step::Hold(p.read_us + p.read_us_per_member * m),
            Step::Release(Res::Db),
            Step::Acquire(host),
            Step::Hold(p.decide_us + p.decide_us_per_member * m),
            Step::Release(host),
            Step::Acquire(Res::Db),
            Step::Hold(p.write_us),
            Step::Release(Res::Db),
            Step::Hold(p.commit_us),
            Step::Release(lock),
            Step::Done,
        ]);
        sim.at.push(0);
        sim.arrived.push(t);
        sim.schedule(t, i);
        i += 1;
    }
    // Run until the horizon: what is still queued then is the backlog.
    while let Some(Reverse((tick, _, change))) = sim.events.pop() {
        sim.now = tick as f64 / 1_000.0;
        if sim.now > horizon {
            break;
        }
        sim.advance(change);
    }
    let backlog = i - sim.latencies.len();
    let mut lat = sim.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |v| v / 1_000.0)
    };
    let busy = |q: &Queue, now: f64| q.busy + q.busy_since.iter().map(|s| now - s).sum::<f64>();
    let now = sim.now.min(horizon);
    let host_busy: f64 = sim.hosts.iter().map(|q| busy(q, now)).sum();
    Outcome {
        completed_per_s: sim.latencies.len() as f64 / sim.p.seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        host_util: host_busy / (now * (p.hosts * p.cores_per_host) as f64),
        db_util: busy(&sim.db, now) / (now * p.db_cores as f64),
        hottest_lock_util: sim
            .locks
            .iter()
            .map(|q| busy(q, now) / now)
            .fold(0.0, f64::max),
        backlog,
    }
}

fn flag(args: &[String], name: &str) -> Option<f64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The first resource past 90% busy. A saturated database or host is
/// named before a lock: queueing for them inside the lock is what fills it.
fn first_to_break(o: &Outcome, one_writer: bool) -> &'static str {
    if o.db_util >= 0.9 {
        "database CPU"
    } else if o.host_util >= 0.9 {
        "host CPU"
    } else if o.hottest_lock_util >= 0.9 && one_writer {
        "the one writer lock"
    } else if o.hottest_lock_util >= 0.9 {
        "the hottest tree's lock"
    } else {
        "nothing (all < 90% busy)"
    }
}

/// Prints the scenario table of `docs/scaling.md`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut base = Params::default();
    for (name, field) in [
        ("--host-us", &mut base.host_us),
        ("--decide-us", &mut base.decide_us),
        ("--decide-us-per-member", &mut base.decide_us_per_member),
        ("--read-us", &mut base.read_us),
        ("--read-us-per-member", &mut base.read_us_per_member),
        ("--write-us", &mut base.write_us),
        ("--commit-us", &mut base.commit_us),
        ("--seconds", &mut base.seconds),
    ] {
        if let Some(v) = flag(args, name) {
            *field = v;
        }
    }
    let seed = flag(args, "--seed").map_or(7, |s| s as u64);
    println!(
        "costs per change (µs): host {} | decide {} + {}/member | read {} + {}/member | write {} | commit {}",
        base.host_us,
        base.decide_us,
        base.decide_us_per_member,
        base.read_us,
        base.read_us_per_member,
        base.write_us,
        base.commit_us
    );
    println!(
        "{:<44} {:>9} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}  first to break",
        "scenario", "offered/s", "done/s", "p50 ms", "p99 ms", "host", "db", "lock", "backlog"
    );
    let sqlite = Params {
        one_writer: true,
        ..base.clone()
    };
    let mut scenarios: Vec<(String, Params)> =
        vec![("SQLite: 1 host, one writer, 100 trees × 12".into(), sqlite)];
    scenarios.extend(
        [
            // Today's bench shape: 100 accounts × 12 members, one host.
            (
                "1 host, 100 trees × 12 members",
                1,
                2,
                1_000.0,
                100,
                12.0,
                0.0,
            ),
            (
                "1 host, 100 trees × 12 members",
                1,
                2,
                2_000.0,
                100,
                12.0,
                0.0,
            ),
            (
                "1 host, all writes on 1 tree",
                1,
                2,
                1_000.0,
                100,
                12.0,
                50.0,
            ),
            // 10×: more hosts, a bigger database.
            (
                "4 hosts, 1,000 trees × 12",
                4,
                8,
                10_000.0,
                1_000,
                12.0,
                0.0,
            ),
            (
                "8 hosts, 1,000 trees × 12",
                8,
                8,
                10_000.0,
                1_000,
                12.0,
                0.0,
            ),
            (
                "8 hosts, 1,000 trees, zipf 1.0",
                8,
                8,
                10_000.0,
                1_000,
                12.0,
                1.0,
            ),
            (
                "8 hosts, 1,000 trees × 1,200 members",
                8,
                8,
                10_000.0,
                1_000,
                1_200.0,
                0.0,
            ),
            // 100×: one primary's cores are the wall.
            (
                "64 hosts, 10,000 trees, db 32 cores",
                64,
                32,
                100_000.0,
                10_000,
                12.0,
                0.0,
            ),
            (
                "64 hosts, 10,000 trees, db 64 cores",
                64,
                64,
                100_000.0,
                10_000,
                12.0,
                0.0,
            ),
            (
                "64 hosts, 10,000 trees, zipf 1.0",
                64,
                64,
                100_000.0,
                10_000,
                12.0,
                1.0,
            ),
        ]
        .into_iter()
        .map(|(name, hosts, db, rate, trees, members, skew)| {
            (
                name.to_owned(),
                Params {
                    hosts,
                    db_cores: db,
                    rate,
                    trees,
                    tree_members: members,
                    skew,
                    ..base.clone()
                },
            )
        }),
    );
    for (name, p) in &scenarios {
        let o = simulate(p, seed);
        println!(
            "{:<44} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>5.0}% {:>5.0}% {:>5.0}% {:>8}  {}",
            name,
            p.rate,
            o.completed_per_s,
            o.p50_ms,
            o.p99_ms,
            o.host_util * 100.0,
            o.db_util * 100.0,
            o.hottest_lock_util * 100.0,
            o.backlog,
            first_to_break(&o, p.one_writer)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_system_answers_in_the_sum_of_its_costs() {
        let p = Params {
            rate: 10.0,
            seconds: 5.0,
            ..Params::default()
        };
        let o = simulate(&p, 1);
        let alone = (p.host_us
            + p.read_us
            + p.read_us_per_member * p.tree_members
            + p.decide_us
            + p.decide_us_per_member * p.tree_members
            + p.write_us
            + p.commit_us)
            / 1_000.0;
        assert!((o.p50_ms - alone).abs() < 0.01, "{} vs {alone}", o.p50_ms);
        assert_eq!(o.backlog, 0);
    }

    #[test]
    fn one_tree_is_bounded_by_its_lock_hold_time() {
        // All traffic on one tree: at most 1 / hold changes per second.
        let p = Params {
            rate: 5_000.0,
            trees: 1,
            hosts: 8,
            db_cores: 16,
            ..Params::default()
        };
        let hold_s = (p.read_us
            + p.read_us_per_member * p.tree_members
            + p.decide_us
            + p.decide_us_per_member * p.tree_members
            + p.write_us
            + p.commit_us)
            / 1e6;
        let o = simulate(&p, 1);
        assert!(
            (o.completed_per_s - 1.0 / hold_s).abs() / (1.0 / hold_s) < 0.02,
            "{} vs {}",
            o.completed_per_s,
            1.0 / hold_s
        );
        assert!(o.hottest_lock_util > 0.98);
        assert!(o.backlog > 0);
    }
}
