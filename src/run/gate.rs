//! Keeps device threads in step: every phase starts on all live devices
//! together, and they all agree on whether to start it at all.
//!
//! Unlike `std::sync::Barrier`, a member can be excluded while others wait
//! (the watchdog does so for a hung device), which releases them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the next phase is, so the gate can decide whether it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The start of burn-in cycle N (from 0).
    Cycle(u32),
    /// The next workload of the current cycle.
    Workload,
}

#[derive(Debug)]
struct State {
    members: usize,
    arrived: usize,
    generation: u64,
    go: bool,
    phase: Option<Phase>,
    excluded: Vec<bool>,
}

/// The gate.
#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
    cv: Condvar,
    stop: Arc<AtomicBool>,
    started: Instant,
    duration: Option<Duration>,
}

impl Gate {
    /// A gate for `members` threads. `duration` bounds burn-in cycles;
    /// `stop` ends the run at the next phase.
    pub fn new(members: usize, stop: Arc<AtomicBool>, duration: Option<Duration>) -> Self {
        Gate {
            state: Mutex::new(State {
                members,
                arrived: 0,
                generation: 0,
                go: false,
                phase: None,
                excluded: vec![false; members],
            }),
            cv: Condvar::new(),
            stop,
            started: Instant::now(),
            duration,
        }
    }

    /// The instant the gate (the run) started: every time of the run counts
    /// from it.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Seconds since the gate (the run) started.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn decide(&self, phase: Phase) -> bool {
        if self.stop.load(Ordering::SeqCst) {
            return false;
        }
        match phase {
            Phase::Workload => true,
            Phase::Cycle(0) => true,
            Phase::Cycle(_) => self.duration.is_some_and(|d| self.started.elapsed() < d),
        }
    }

    fn release(&self, s: &mut State) {
        s.go = s.phase.is_some_and(|p| self.decide(p));
        s.arrived = 0;
        s.phase = None;
        s.generation += 1;
        self.cv.notify_all();
    }

    /// Waits until every live member has arrived; returns whether `phase`
    /// runs. An excluded member always gets `false`.
    pub fn arrive(&self, slot: usize, phase: Phase) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if s.excluded.get(slot).copied().unwrap_or(true) {
            return false;
        }
        s.phase.get_or_insert(phase);
        s.arrived += 1;
        if s.arrived >= s.members {
            self.release(&mut s);
            return s.go;
        }
        let generation = s.generation;
        while s.generation == generation {
            s = match self.cv.wait(s) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
        s.go && !s.excluded.get(slot).copied().unwrap_or(true)
    }

    /// Removes `slot` from the gate (it hung or is gone); releases the others
    /// if they were only waiting for it.
    pub fn exclude(&self, slot: usize) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.excluded.get(slot).copied().unwrap_or(true) {
            return;
        }
        s.excluded[slot] = true;
        s.members -= 1;
        if s.members > 0 && s.arrived >= s.members {
            self.release(&mut s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluding_a_laggard_releases_the_others() {
        let gate = Arc::new(Gate::new(3, Arc::new(AtomicBool::new(false)), None));
        let handles: Vec<_> = (0..2)
            .map(|slot| {
                let g = gate.clone();
                std::thread::spawn(move || g.arrive(slot, Phase::Workload))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        gate.exclude(2);
        for h in handles {
            assert!(h.join().expect("thread"));
        }
        assert!(!gate.arrive(2, Phase::Workload), "excluded slot never runs");
    }

    #[test]
    fn stop_ends_the_next_phase_for_everyone() {
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Gate::new(2, stop.clone(), None));
        stop.store(true, Ordering::SeqCst);
        let g = gate.clone();
        let h = std::thread::spawn(move || g.arrive(0, Phase::Workload));
        assert!(!gate.arrive(1, Phase::Workload));
        assert!(!h.join().expect("thread"));
    }

    #[test]
    fn cycles_run_until_the_duration() {
        let gate = Gate::new(
            1,
            Arc::new(AtomicBool::new(false)),
            Some(Duration::from_millis(30)),
        );
        assert!(gate.arrive(0, Phase::Cycle(0)));
        assert!(gate.arrive(0, Phase::Cycle(1)));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!gate.arrive(0, Phase::Cycle(2)));
        // Without a duration only the first cycle runs.
        let once = Gate::new(1, Arc::new(AtomicBool::new(false)), None);
        assert!(once.arrive(0, Phase::Cycle(0)));
        assert!(!once.arrive(0, Phase::Cycle(1)));
    }
}
