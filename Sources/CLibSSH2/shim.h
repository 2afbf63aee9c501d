#ifndef GOVUK_FAB_CLIBSSH2_SHIM_H
#define GOVUK_FAB_CLIBSSH2_SHIM_H
// libssh2's function-like macros do not import into Swift; the transport calls
// the *_ex functions directly. This header only gathers the includes.
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <libssh2_publickey.h>
#endif
