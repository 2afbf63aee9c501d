#ifndef GOVUK_FAB_CEPOLL_SHIM_H
#define GOVUK_FAB_CEPOLL_SHIM_H
// Swift's Glibc module leaves out <sys/epoll.h> and <sys/eventfd.h>; the SSH reactor and replay's
// socket loops wait with epoll. Importing the header keeps struct epoll_event's layout (packed on
// x86-64) the C compiler's business.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
