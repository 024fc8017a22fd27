//! Writing files so that readers never see half a file, and a failed run writes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A file staged next to its destination, not yet visible under its final name.
struct Staged {
    temp: NamedTempFile,
    dest: PathBuf,
}

fn stage(dest: &Path, content: &[u8]) -> Result<Staged> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    // NamedTempFile is created with mode 0600, so a secret is never readable by others, not
    // even for an instant.
    let mut temp = NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    temp.write_all(content)
        .and_then(|_| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(Staged {
        temp,
        dest: dest.to_path_buf(),
    })
}

/// Writes every file or none: all are staged first, then renamed into place.
pub fn write_all_atomically(files: &[(PathBuf, String)], mode: u32) -> Result<()> {
    let staged = files
        .iter()
        .map(|(path, content)| stage(path, content.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    for s in staged {
        set_mode(s.temp.path(), mode)?;
        s.temp
            .persist(&s.dest)
            .with_context(|| format!("cannot write {}", s.dest.display()))?;
    }
    Ok(())
}

/// Who can read a file written by [`write_private`], for the message that reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privacy {
    /// Unix: mode 0600.
    Mode0600,
    /// Windows: an access list that grants the current user alone, inheriting nothing.
    OwnerOnlyAcl,
    /// The platform's restriction failed (say, a file system without ACLs); the file has its
    /// folder's permissions. The reason is said.
    FolderDefault(String),
}

impl std::fmt::Display for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Privacy::Mode0600 => f.write_str("mode 0600"),
            Privacy::OwnerOnlyAcl => f.write_str("readable by your Windows account alone"),
            Privacy::FolderDefault(why) => write!(
                f,
                "NOT restricted to you ({why}): it has its folder's permissions, so keep it in a \
                 folder only you can read"
            ),
        }
    }
}

/// Writes a private file: mode 0600 on unix, an owner-only ACL on Windows, in place before the
/// file gets its name. With `overwrite` false, fails if the file exists — checked atomically at
/// the rename, so a concurrent writer cannot be clobbered.
pub fn write_private(dest: &Path, content: &str, overwrite: bool) -> Result<Privacy> {
    let s = stage(dest, content.as_bytes())?;
    let privacy = make_private(s.temp.path());
    if overwrite {
        s.temp.persist(&s.dest).map(drop)
    } else {
        s.temp.persist_noclobber(&s.dest).map(drop)
    }
    .map_err(|e| e.error)
    .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(privacy)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions of {}", path.display()))
}

/// Windows has no modes: a mode that denies group and others (a file holding secrets, rewritten
/// by `scale`) becomes the owner-only ACL again, as the new file would otherwise take its
/// folder's; any other mode leaves the folder's. Best effort: the restriction fails only where
/// the file system has no ACLs (FAT, some shares), and there the old file had none either.
#[cfg(not(unix))]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    if mode & 0o077 == 0 {
        make_private(path);
    }
    Ok(())
}

#[cfg(unix)]
fn make_private(_path: &Path) -> Privacy {
    // NamedTempFile created it with mode 0600 already.
    Privacy::Mode0600
}

#[cfg(windows)]
fn make_private(path: &Path) -> Privacy {
    match acl::restrict_to_current_user(path) {
        Ok(()) => Privacy::OwnerOnlyAcl,
        Err(e) => Privacy::FolderDefault(e.to_string()),
    }
}

#[cfg(not(any(unix, windows)))]
fn make_private(_path: &Path) -> Privacy {
    Privacy::FolderDefault("this platform has no supported way to restrict files".into())
}

/// The Windows counterpart of mode 0600: a protected DACL (nothing inherited from the folder)
/// with one entry granting the process's user full access.
#[cfg(windows)]
mod acl {
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::{null, null_mut};

    use windows_sys::Win32::Foundation::{
        CloseHandle, LocalFree, ERROR_SUCCESS, GENERIC_ALL, HANDLE,
    };
    use windows_sys::Win32::Security::Authorization::{
        SetEntriesInAclW, SetNamedSecurityInfoW, EXPLICIT_ACCESS_W, NO_MULTIPLE_TRUSTEE,
        SET_ACCESS, SE_FILE_OBJECT, TRUSTEE_IS_SID, TRUSTEE_IS_USER, TRUSTEE_W,
    };
    use windows_sys::Win32::Security::{
        GetTokenInformation, TokenUser, ACL, DACL_SECURITY_INFORMATION, NO_INHERITANCE,
        PROTECTED_DACL_SECURITY_INFORMATION, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    pub fn restrict_to_current_user(path: &Path) -> std::io::Result<()> {
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        // SAFETY: every pointer passed is valid for the call: the token handle is closed and the
        // ACL freed on every path, and `user` (a TOKEN_USER in a u64-aligned buffer of the size
        // Windows asked for) outlives the calls that use its SID.
        unsafe {
            let mut token: HANDLE = null_mut();
            if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut len = 0u32;
            GetTokenInformation(token, TokenUser, null_mut(), 0, &mut len);
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
            let ok = GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut len,
            );
            let err = std::io::Error::last_os_error();
            CloseHandle(token);
            if ok == 0 {
                return Err(err);
            }
            let user = &*(buf.as_ptr().cast::<TOKEN_USER>());
            let entry = EXPLICIT_ACCESS_W {
                grfAccessPermissions: GENERIC_ALL,
                grfAccessMode: SET_ACCESS,
                grfInheritance: NO_INHERITANCE,
                Trustee: TRUSTEE_W {
                    pMultipleTrustee: null_mut(),
                    MultipleTrusteeOperation: NO_MULTIPLE_TRUSTEE,
                    TrusteeForm: TRUSTEE_IS_SID,
                    TrusteeType: TRUSTEE_IS_USER,
                    ptstrName: user.User.Sid.cast(),
                },
            };
            let mut acl: *mut ACL = null_mut();
            let rc = SetEntriesInAclW(1, &entry, null(), &mut acl);
            if rc != ERROR_SUCCESS {
                return Err(std::io::Error::from_raw_os_error(rc as i32));
            }
            let rc = SetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                acl,
                null(),
            );
            LocalFree(acl.cast());
            if rc != ERROR_SUCCESS {
                return Err(std::io::Error::from_raw_os_error(rc as i32));
            }
        }
        Ok(())
    }
}
