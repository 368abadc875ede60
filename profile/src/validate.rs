//! Values no kernel can have, refused so a corrupt profile fails on reading
//! and not as garbage in the events.

use crate::error::ProfileError;
use crate::model::Profile;
use crate::{FORMAT_UNTYPED, FORMAT_VERSION};

/// No kernel struct nobtf reads is anywhere near this large.
const MAX_FIELD_OFFSET: u32 = 1 << 16;

impl Profile {
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.format != FORMAT_VERSION && self.format != FORMAT_UNTYPED {
            return Err(ProfileError::Format { found: self.format });
        }
        let typed = self.format == FORMAT_VERSION;
        let abi = self.abi()?;
        let max_args = abi.args.len();
        for (key, field) in &self.fields {
            let well_formed = key
                .split_once('.')
                .is_some_and(|(strukt, member)| !strukt.is_empty() && !member.is_empty());
            if !well_formed {
                return Err(ProfileError::Invalid(format!(
                    "field key `{key}` is not `struct.member`"
                )));
            }
            match (&field.c_type, typed) {
                (None, true) => {
                    return Err(ProfileError::Invalid(format!(
                        "field `{key}` has no type, which format {FORMAT_VERSION} gives every field"
                    )));
                }
                (Some(_), false) => {
                    return Err(ProfileError::Invalid(format!(
                        "field `{key}` has a type, which format {FORMAT_UNTYPED} does not carry (types came with format {FORMAT_VERSION})"
                    )));
                }
                (Some(t), true) if t.trim().is_empty() => {
                    return Err(ProfileError::Invalid(format!(
                        "field `{key}` has an empty type"
                    )));
                }
                _ => {}
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
        for (name, layout) in &self.structs {
            // Alignment 0 would divide by zero when a script's struct is laid out.
            if layout.size == 0 || !layout.align.is_power_of_two() || layout.align > layout.size {
                return Err(ProfileError::Invalid(format!(
                    "struct `{name}` has size {} and alignment {}: a struct has a size and a power-of-two alignment no larger",
                    layout.size, layout.align
                )));
            }
            if layout.size > MAX_FIELD_OFFSET {
                return Err(ProfileError::Invalid(format!(
                    "struct `{name}` size {} is beyond any struct",
                    layout.size
                )));
            }
        }
        for (name, function) in &self.functions {
            if abi.arg(function.name_arg).is_none() {
                return Err(ProfileError::Invalid(format!(
                    "function `{name}` name_arg {} is not 1..={max_args} (registers on {})",
                    function.name_arg, abi.arch
                )));
            }
        }
        Ok(())
    }
}
