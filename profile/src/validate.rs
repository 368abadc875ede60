//! Values no kernel can have, refused so a corrupt profile fails on reading
//! and not as garbage in the events.

use crate::error::ProfileError;
use crate::model::{FORMAT_VERSION, MAX_REGISTER_ARGS, Profile};

/// No kernel struct nobtf reads is anywhere near this large.
const MAX_FIELD_OFFSET: u32 = 1 << 16;

impl Profile {
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.format != FORMAT_VERSION {
            return Err(ProfileError::Format { found: self.format });
        }
        if self.kernel.arch != "x86_64" {
            return Err(ProfileError::Invalid(format!(
                "arch `{}`: only x86_64 is supported",
                self.kernel.arch
            )));
        }
        for (key, field) in &self.fields {
            let well_formed = key
                .split_once('.')
                .is_some_and(|(strukt, member)| !strukt.is_empty() && !member.is_empty());
            if !well_formed {
                return Err(ProfileError::Invalid(format!(
                    "field key `{key}` is not `struct.member`"
                )));
            }
            if field.size == 0 {
                return Err(ProfileError::Invalid(format!("field `{key}` has size 0")));
            }
            if field.offset > MAX_FIELD_OFFSET {
                return Err(ProfileError::Invalid(format!(
                    "field `{key}` offset {} is beyond any struct",
                    field.offset
                )));
            }
        }
        for (name, function) in &self.functions {
            if function.name_arg == 0 || function.name_arg > MAX_REGISTER_ARGS {
                return Err(ProfileError::Invalid(format!(
                    "function `{name}` name_arg {} is not 1..={MAX_REGISTER_ARGS}",
                    function.name_arg
                )));
            }
        }
        Ok(())
    }
}
