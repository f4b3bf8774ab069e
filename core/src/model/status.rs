//! Statuses are state machines: every change goes through `transition`, so an illegal move (a
//! second approval of a decided request, a turn finishing twice) is an error the caller must
//! handle instead of a silent overwrite of what another worker just wrote.

use std::fmt;

/// A status change that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {machine} transition: {from} -> {to}")]
pub struct IllegalTransition {
    pub machine: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// A value that names itself in storage and on the wire with a fixed snake_case string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
}

pub trait StateMachine: Copy + Eq + fmt::Debug + Sized + 'static {
    const MACHINE: &'static str;

    fn name(self) -> &'static str;

    /// Whether `self -> to` is a legal move. Staying in place is not a move: callers that
    /// might repeat themselves check the current status first.
    fn allows(self, to: Self) -> bool;

    fn is_terminal(self) -> bool;

    fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        if self.allows(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { machine: Self::MACHINE, from: self.name(), to: to.name() })
        }
    }
}

/// Declares a fieldless enum whose variants have fixed snake_case names, with `name()`,
/// `FromStr`, `Display` and serde that all agree, so the database, the JSON API and the logs
/// never spell a status two ways.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $ty:ident : $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $name:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $ty { $($(#[$vmeta])* #[serde(rename = $name)] $variant),+ }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::model::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::model::UnknownName { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use named_enum;

/// Declares the legal moves of a status enum as a table: `From => [To, ...]`.
macro_rules! transitions {
    ($ty:ident : $machine:literal { $($from:ident => [$($to:ident),* $(,)?]),+ $(,)? }) => {
        impl $crate::model::StateMachine for $ty {
            const MACHINE: &'static str = $machine;

            fn name(self) -> &'static str {
                $ty::name(self)
            }

            fn allows(self, to: Self) -> bool {
                match self { $($ty::$from => { let next: &[$ty] = &[$($ty::$to),*]; next.contains(&to) })+ }
            }

            fn is_terminal(self) -> bool {
                match self { $($ty::$from => { let next: &[$ty] = &[$($ty::$to),*]; next.is_empty() })+ }
            }
        }
    };
}
pub(crate) use transitions;
