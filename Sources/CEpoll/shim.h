#ifndef GOVUK_FAB_CEPOLL_SHIM_H
#define GOVUK_FAB_CEPOLL_SHIM_H
// What Swift's Glibc module leaves out: <sys/epoll.h> and <sys/eventfd.h>, for the SSH reactor and
// replay's socket loops, and the GNU extension pthread_setname_np (declared only under _GNU_SOURCE),
// so those threads carry their names in top -H and perf. Importing the header keeps struct
// epoll_event's layout (packed on x86-64) the C compiler's business.
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
extern int pthread_setname_np(pthread_t thread, const char *name);
#endif
