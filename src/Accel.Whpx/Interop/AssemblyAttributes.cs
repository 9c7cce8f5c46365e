using System.Runtime.CompilerServices;

// Every interop type is blittable and every P/Invoke is source-generated, so the runtime marshaller is never needed.
[assembly: DisableRuntimeMarshalling]
