//! BEGIN, END and the timers' blocks, run in user space by
//! `lang::userspace` against the session's maps: BEGIN before the probes
//! are attached (its tables are in the kernel before the first probe
//! fires), END after they are detached.

use lang::format::time::Clock;
use lang::output::{Event, MapSpec};
use lang::userspace::{self, Flow, Host, RunError};

use super::printer::Printer;
use super::{TraceError, act, split_per_cpu};
use crate::session::{Session, SessionError};

/// `BPF_ANY`: create or replace.
pub(super) const ANY: u64 = 0;

pub(super) struct Blocks<'a, 'p> {
    pub session: &'a Session,
    pub printer: &'a mut Printer<'p>,
    /// An `exit()` was acted on.
    pub stopped: bool,
}

impl Blocks<'_, '_> {
    /// Runs `blocks` in order; whether the program is to stop.
    pub fn run(&mut self, blocks: &[lang::typed::TProbe]) -> Result<bool, TraceError> {
        let compiled = self.printer.compiled();
        let flow = userspace::run_all(compiled, blocks, self).map_err(run_error)?;
        self.printer.exited |= flow == Flow::Exit;
        Ok(self.stopped || flow == Flow::Exit)
    }

    /// `elapsed`'s start, then BEGIN; whether the program is to stop.
    pub fn start(&mut self) -> Result<bool, TraceError> {
        let compiled = self.printer.compiled();
        let flow = userspace::start(compiled, self).map_err(run_error)?;
        self.printer.exited |= flow == Flow::Exit;
        Ok(self.stopped || flow == Flow::Exit)
    }
}

fn run_error(err: RunError<TraceError>) -> TraceError {
    match err {
        RunError::Host(e) => e,
        RunError::Decode(e) => TraceError::Report(e.into()),
    }
}

impl Host for Blocks<'_, '_> {
    type Error = TraceError;

    fn lookup(&mut self, map: &MapSpec, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>, TraceError> {
        let Some(fd) = self.session.map(&map.name) else {
            return Ok(None);
        };
        let mut value = vec![0u8; fd.lookup_len()];
        if !fd
            .lookup(&map.kernel_key(key), &mut value)
            .map_err(SessionError::from)?
        {
            return Ok(None);
        }
        let per_cpu = split_per_cpu(map, &value);
        Ok(map.present(&per_cpu).then_some(per_cpu))
    }

    fn update(&mut self, map: &MapSpec, key: &[u8], value: &[u8]) -> Result<(), TraceError> {
        let fd = self
            .session
            .map(&map.name)
            .ok_or_else(|| SessionError::NoMap(map.name.clone()))?;
        fd.update(&map.kernel_key(key), value, ANY)
            .map_err(SessionError::from)?;
        Ok(())
    }

    fn delete(&mut self, map: &MapSpec, key: &[u8]) -> Result<(), TraceError> {
        if let Some(fd) = self.session.map(&map.name) {
            fd.delete(&map.kernel_key(key))
                .map_err(SessionError::from)?;
        }
        Ok(())
    }

    fn emit(&mut self, event: Event) -> Result<(), TraceError> {
        let step = self.printer.event(&event)?;
        self.printer.step(step)?;
        self.stopped |= act(self.printer, self.session)?;
        Ok(())
    }

    fn clock(&self) -> &dyn Clock {
        self.printer.clock()
    }
}
