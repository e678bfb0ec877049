
/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sealpod: appended to arch/x86/kernel/apic/apic.c by scripts/build-kernel.
 *
 * lapic_timer_period=N gives the local APIC timer's period (bus clocks per
 * tick) up front. Without it a CPU that lacks the TSC-deadline timer (QEMU's
 * TCG) spends ten ticks, 100 ms of boot, measuring it. QEMU's and KVM's
 * APIC bus runs at 1 GHz, so with HZ=100 the period is 10000000.
 * calibrate_APIC_clock() then takes the known value as it takes one from a
 * hypervisor leaf. A CPU with the TSC-deadline timer ignores it.
 */
static int __init sealpod_lapic_timer_period(char *arg)
{
	unsigned int v;

	if (!arg || kstrtouint(arg, 0, &v) || v < 1000000 / HZ)
		return -EINVAL;
	lapic_timer_period = v;
	return 0;
}
early_param("lapic_timer_period", sealpod_lapic_timer_period);
