#ifndef GOVUK_FAB_CPCAP_SHIM_H
#define GOVUK_FAB_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
