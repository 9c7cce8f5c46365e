namespace Hypervisor.Core.Cpu;

/// <summary>One feature flag of the x86 <c>CPUID</c> instruction: a bit in a register of a leaf (and sub-leaf).</summary>
/// <param name="Name">The name the Intel SDM gives the flag (for messages and tests).</param>
/// <param name="Location">The leaf, sub-leaf and register that hold it.</param>
/// <param name="Bit">The bit number, 0 to 31.</param>
public readonly record struct CpuFeature(string Name, CpuidRegisterLocation Location, int Bit)
{
    /// <summary>The flag's bit as a mask of its register.</summary>
    public uint Mask => 1u << Bit;

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({Location}[{Bit}])";
}

/// <summary>
/// The <c>CPUID</c> feature flags the CPU models and accelerators talk about, named as in the Intel SDM Vol. 2A,
/// CPUID instruction, tables 3-10, 3-11 and the leaf 07H, 0DH and 80000001H descriptions.
/// </summary>
public static class CpuFeatures
{
    private static readonly CpuidRegisterLocation Leaf1Ecx = new(1, 0, CpuidRegister.Ecx);
    private static readonly CpuidRegisterLocation Leaf1Edx = new(1, 0, CpuidRegister.Edx);
    private static readonly CpuidRegisterLocation Leaf7Ebx = new(7, 0, CpuidRegister.Ebx);
    private static readonly CpuidRegisterLocation Leaf7Ecx = new(7, 0, CpuidRegister.Ecx);
    private static readonly CpuidRegisterLocation XsaveComponents = new(0xD, 0, CpuidRegister.Eax);
    private static readonly CpuidRegisterLocation XsaveSubleaf1 = new(0xD, 1, CpuidRegister.Eax);
    private static readonly CpuidRegisterLocation Ext1Ecx = new(0x8000_0001, 0, CpuidRegister.Ecx);
    private static readonly CpuidRegisterLocation Ext1Edx = new(0x8000_0001, 0, CpuidRegister.Edx);

    /// <summary>x87 FPU on chip.</summary>
    public static readonly CpuFeature Fpu = new("FPU", Leaf1Edx, 0);
    /// <summary>Virtual-8086 mode enhancements.</summary>
    public static readonly CpuFeature Vme = new("VME", Leaf1Edx, 1);
    /// <summary>Debugging extensions (CR4.DE, I/O breakpoints).</summary>
    public static readonly CpuFeature De = new("DE", Leaf1Edx, 2);
    /// <summary>4 MiB pages (CR4.PSE).</summary>
    public static readonly CpuFeature Pse = new("PSE", Leaf1Edx, 3);
    /// <summary>RDTSC and CR4.TSD.</summary>
    public static readonly CpuFeature Tsc = new("TSC", Leaf1Edx, 4);
    /// <summary>RDMSR and WRMSR.</summary>
    public static readonly CpuFeature Msr = new("MSR", Leaf1Edx, 5);
    /// <summary>Physical address extension.</summary>
    public static readonly CpuFeature Pae = new("PAE", Leaf1Edx, 6);
    /// <summary>Machine-check exception.</summary>
    public static readonly CpuFeature Mce = new("MCE", Leaf1Edx, 7);
    /// <summary>CMPXCHG8B.</summary>
    public static readonly CpuFeature Cx8 = new("CX8", Leaf1Edx, 8);
    /// <summary>On-chip local APIC (reflects IA32_APIC_BASE enable on real CPUs).</summary>
    public static readonly CpuFeature Apic = new("APIC", Leaf1Edx, 9);
    /// <summary>SYSENTER and SYSEXIT.</summary>
    public static readonly CpuFeature Sep = new("SEP", Leaf1Edx, 11);
    /// <summary>Memory type range registers.</summary>
    public static readonly CpuFeature Mtrr = new("MTRR", Leaf1Edx, 12);
    /// <summary>Global pages (CR4.PGE).</summary>
    public static readonly CpuFeature Pge = new("PGE", Leaf1Edx, 13);
    /// <summary>Machine-check architecture.</summary>
    public static readonly CpuFeature Mca = new("MCA", Leaf1Edx, 14);
    /// <summary>CMOVcc and FCMOVcc.</summary>
    public static readonly CpuFeature Cmov = new("CMOV", Leaf1Edx, 15);
    /// <summary>Page attribute table.</summary>
    public static readonly CpuFeature Pat = new("PAT", Leaf1Edx, 16);
    /// <summary>36-bit physical addresses in 4 MiB pages.</summary>
    public static readonly CpuFeature Pse36 = new("PSE-36", Leaf1Edx, 17);
    /// <summary>CLFLUSH.</summary>
    public static readonly CpuFeature Clfsh = new("CLFSH", Leaf1Edx, 19);
    /// <summary>MMX.</summary>
    public static readonly CpuFeature Mmx = new("MMX", Leaf1Edx, 23);
    /// <summary>FXSAVE and FXRSTOR (with CR4.OSFXSR).</summary>
    public static readonly CpuFeature Fxsr = new("FXSR", Leaf1Edx, 24);
    /// <summary>SSE.</summary>
    public static readonly CpuFeature Sse = new("SSE", Leaf1Edx, 25);
    /// <summary>SSE2.</summary>
    public static readonly CpuFeature Sse2 = new("SSE2", Leaf1Edx, 26);
    /// <summary>Leaf 1 EBX[23:16] is valid (more than one logical processor per package).</summary>
    public static readonly CpuFeature Htt = new("HTT", Leaf1Edx, 28);

    /// <summary>SSE3.</summary>
    public static readonly CpuFeature Sse3 = new("SSE3", Leaf1Ecx, 0);
    /// <summary>PCLMULQDQ.</summary>
    public static readonly CpuFeature Pclmulqdq = new("PCLMULQDQ", Leaf1Ecx, 1);
    /// <summary>MONITOR and MWAIT.</summary>
    public static readonly CpuFeature Monitor = new("MONITOR", Leaf1Ecx, 3);
    /// <summary>SSSE3.</summary>
    public static readonly CpuFeature Ssse3 = new("SSSE3", Leaf1Ecx, 9);
    /// <summary>FMA3.</summary>
    public static readonly CpuFeature Fma = new("FMA", Leaf1Ecx, 12);
    /// <summary>CMPXCHG16B.</summary>
    public static readonly CpuFeature Cx16 = new("CMPXCHG16B", Leaf1Ecx, 13);
    /// <summary>SSE4.1.</summary>
    public static readonly CpuFeature Sse41 = new("SSE4_1", Leaf1Ecx, 19);
    /// <summary>SSE4.2.</summary>
    public static readonly CpuFeature Sse42 = new("SSE4_2", Leaf1Ecx, 20);
    /// <summary>x2APIC mode.</summary>
    public static readonly CpuFeature X2Apic = new("x2APIC", Leaf1Ecx, 21);
    /// <summary>MOVBE.</summary>
    public static readonly CpuFeature Movbe = new("MOVBE", Leaf1Ecx, 22);
    /// <summary>POPCNT.</summary>
    public static readonly CpuFeature Popcnt = new("POPCNT", Leaf1Ecx, 23);
    /// <summary>Local APIC timer TSC-deadline mode.</summary>
    public static readonly CpuFeature TscDeadline = new("TSC-Deadline", Leaf1Ecx, 24);
    /// <summary>AES-NI.</summary>
    public static readonly CpuFeature Aes = new("AESNI", Leaf1Ecx, 25);
    /// <summary>XSAVE/XRSTOR, XSETBV/XGETBV and XCR0.</summary>
    public static readonly CpuFeature Xsave = new("XSAVE", Leaf1Ecx, 26);
    /// <summary>CR4.OSXSAVE is set (a copy of CR4, not a capability).</summary>
    public static readonly CpuFeature Osxsave = new("OSXSAVE", Leaf1Ecx, 27);
    /// <summary>AVX.</summary>
    public static readonly CpuFeature Avx = new("AVX", Leaf1Ecx, 28);
    /// <summary>16-bit float conversions.</summary>
    public static readonly CpuFeature F16c = new("F16C", Leaf1Ecx, 29);
    /// <summary>RDRAND.</summary>
    public static readonly CpuFeature Rdrand = new("RDRAND", Leaf1Ecx, 30);
    /// <summary>Running under a hypervisor (reserved for software use).</summary>
    public static readonly CpuFeature Hypervisor = new("Hypervisor", Leaf1Ecx, 31);

    /// <summary>RDFSBASE/WRFSBASE/RDGSBASE/WRGSBASE.</summary>
    public static readonly CpuFeature FsGsBase = new("FSGSBASE", Leaf7Ebx, 0);
    /// <summary>BMI1 (ANDN, BEXTR, BLSI, BLSMSK, BLSR, TZCNT).</summary>
    public static readonly CpuFeature Bmi1 = new("BMI1", Leaf7Ebx, 3);
    /// <summary>AVX2.</summary>
    public static readonly CpuFeature Avx2 = new("AVX2", Leaf7Ebx, 5);
    /// <summary>Supervisor-mode execution prevention.</summary>
    public static readonly CpuFeature Smep = new("SMEP", Leaf7Ebx, 7);
    /// <summary>BMI2 (BZHI, MULX, PDEP, PEXT, RORX, SARX, SHLX, SHRX).</summary>
    public static readonly CpuFeature Bmi2 = new("BMI2", Leaf7Ebx, 8);
    /// <summary>Enhanced REP MOVSB/STOSB.</summary>
    public static readonly CpuFeature Erms = new("ERMS", Leaf7Ebx, 9);
    /// <summary>INVPCID.</summary>
    public static readonly CpuFeature Invpcid = new("INVPCID", Leaf7Ebx, 10);
    /// <summary>RDSEED.</summary>
    public static readonly CpuFeature Rdseed = new("RDSEED", Leaf7Ebx, 18);
    /// <summary>ADCX and ADOX.</summary>
    public static readonly CpuFeature Adx = new("ADX", Leaf7Ebx, 19);
    /// <summary>Supervisor-mode access prevention.</summary>
    public static readonly CpuFeature Smap = new("SMAP", Leaf7Ebx, 20);
    /// <summary>CLFLUSHOPT.</summary>
    public static readonly CpuFeature ClflushOpt = new("CLFLUSHOPT", Leaf7Ebx, 23);
    /// <summary>SHA extensions.</summary>
    public static readonly CpuFeature Sha = new("SHA", Leaf7Ebx, 29);
    /// <summary>User-mode instruction prevention.</summary>
    public static readonly CpuFeature Umip = new("UMIP", Leaf7Ecx, 2);
    /// <summary>Protection keys for user pages.</summary>
    public static readonly CpuFeature Pku = new("PKU", Leaf7Ecx, 3);
    /// <summary>RDPID.</summary>
    public static readonly CpuFeature Rdpid = new("RDPID", Leaf7Ecx, 22);

    /// <summary>XCR0 bit 0 (x87 state), reported in CPUID.(EAX=0DH,ECX=0):EAX.</summary>
    public static readonly CpuFeature XsaveX87State = new("XCR0.X87", XsaveComponents, 0);

    /// <summary>XCR0 bit 1 (SSE state: XMM registers and MXCSR), reported in CPUID.(EAX=0DH,ECX=0):EAX.</summary>
    public static readonly CpuFeature XsaveSseState = new("XCR0.SSE", XsaveComponents, 1);

    /// <summary>XCR0 bit 2 (AVX state: upper halves of YMM), reported in CPUID.(EAX=0DH,ECX=0):EAX.</summary>
    public static readonly CpuFeature XsaveAvxState = new("XCR0.AVX", XsaveComponents, 2);

    /// <summary>XSAVEOPT.</summary>
    public static readonly CpuFeature XsaveOpt = new("XSAVEOPT", XsaveSubleaf1, 0);
    /// <summary>XSAVEC and the compacted format.</summary>
    public static readonly CpuFeature XsaveC = new("XSAVEC", XsaveSubleaf1, 1);
    /// <summary>XGETBV with ECX = 1.</summary>
    public static readonly CpuFeature XgetbvEcx1 = new("XGETBV-ECX1", XsaveSubleaf1, 2);
    /// <summary>XSAVES/XRSTORS and IA32_XSS.</summary>
    public static readonly CpuFeature XsaveS = new("XSAVES", XsaveSubleaf1, 3);

    /// <summary>LAHF and SAHF in 64-bit mode.</summary>
    public static readonly CpuFeature LahfLm = new("LAHF-SAHF-64", Ext1Ecx, 0);
    /// <summary>LZCNT (AMD's ABM).</summary>
    public static readonly CpuFeature Lzcnt = new("LZCNT", Ext1Ecx, 5);
    /// <summary>PREFETCHW.</summary>
    public static readonly CpuFeature Prefetchw = new("PREFETCHW", Ext1Ecx, 8);
    /// <summary>SYSCALL and SYSRET in 64-bit mode.</summary>
    public static readonly CpuFeature Syscall = new("SYSCALL", Ext1Edx, 11);
    /// <summary>Execute-disable bit (EFER.NXE).</summary>
    public static readonly CpuFeature Nx = new("NX", Ext1Edx, 20);
    /// <summary>1 GiB pages.</summary>
    public static readonly CpuFeature Page1Gb = new("Page1GB", Ext1Edx, 26);
    /// <summary>RDTSCP and IA32_TSC_AUX.</summary>
    public static readonly CpuFeature Rdtscp = new("RDTSCP", Ext1Edx, 27);
    /// <summary>Intel 64 / long mode (EFER.LME).</summary>
    public static readonly CpuFeature LongMode = new("LM", Ext1Edx, 29);

    /// <summary>
    /// Every register that holds feature flags in the leaves our CPU models define. An accelerator's capabilities are
    /// read from these registers and a model's answer is masked in them; every other register is identity or size
    /// information that the model itself provides.
    /// </summary>
    public static IReadOnlyList<CpuidRegisterLocation> FeatureRegisters { get; } =
        [Leaf1Ecx, Leaf1Edx, Leaf7Ebx, Leaf7Ecx, XsaveComponents, XsaveSubleaf1, Ext1Ecx, Ext1Edx];
}
