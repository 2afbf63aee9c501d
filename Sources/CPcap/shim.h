#ifndef GOVUK_FAB_CPCAP_SHIM_H
#define GOVUK_FAB_CPCAP_SHIM_H
#include <pcap/pcap.h>

/// Seconds and sub-second part of a packet header's timestamp, as 64-bit
/// integers whatever `struct timeval`'s field widths are on the platform.
static inline long long cpcap_header_seconds(const struct pcap_pkthdr *h) {
    return (long long)h->ts.tv_sec;
}
static inline long long cpcap_header_subseconds(const struct pcap_pkthdr *h) {
    return (long long)h->ts.tv_usec;
}
#endif
