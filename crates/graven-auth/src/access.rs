//! Who is asking and what they may do: the `Authorization` header, and the access each route
//! needs by role. Keys themselves are checked by the registry (`registry`).

use crate::identity::Role;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, readiness, metrics, the OpenAPI document.
    Public,
    /// The tiled-log read path (`/checkpoint`, `/tile/...`, `/v1/log`): auditor or admin,
    /// or anyone when `public_read_path` is set.
    ReadPath,
    /// Reading events, searching, proofs, the live stream: auditor or admin.
    Read,
    /// Appending events as oneself: writer or admin.
    Append,
    /// Managing identities and keys: admin.
    Admin,
    /// A platform's source endpoint: the source role (which platforms and subjects, its grant).
    Source,
}

impl Access {
    /// Whether `role` may use a route that needs `self`.
    pub fn permits(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::ReadPath | Access::Read => matches!(role, Role::Auditor | Role::Admin),
            Access::Append => matches!(role, Role::Writer | Role::Admin),
            Access::Admin => role == Role::Admin,
            Access::Source => role == Role::Source,
        }
    }

    pub fn needs(self) -> &'static str {
        match self {
            Access::Public => "nothing",
            Access::ReadPath | Access::Read => "the auditor or admin role",
            Access::Append => "the writer or admin role",
            Access::Admin => "the admin role",
            Access::Source => "the source role",
        }
    }
}

/// Takes the bearer token out of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, HeaderError> {
    let value = header.ok_or(HeaderError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(HeaderError::Scheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(HeaderError::Scheme);
    }
    Ok(token.trim())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "this endpoint needs a credential: send `Authorization: Bearer <API key>` (the bootstrap admin key is in <data-dir>/admin.token)"
    )]
    Missing,
    #[error("use the Bearer scheme: `Authorization: Bearer <API key>`")]
    Scheme,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_get_exactly_their_access() {
        let table = [
            (Role::Writer, [true, false, false, true, false, false]),
            (Role::Auditor, [true, true, true, false, false, false]),
            (Role::Admin, [true, true, true, true, true, false]),
            // A source reports its subjects' events on its endpoint, and does nothing else.
            (Role::Source, [true, false, false, false, false, true]),
        ];
        for (role, expect) in table {
            let all = [
                Access::Public,
                Access::ReadPath,
                Access::Read,
                Access::Append,
                Access::Admin,
                Access::Source,
            ];
            let got = all.map(|a| a.permits(role));
            assert_eq!(got, expect, "{role:?}");
        }
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(HeaderError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(HeaderError::Scheme));
        assert_eq!(bearer(Some("Bearer")), Err(HeaderError::Scheme));
    }
}
