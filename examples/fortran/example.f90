! example.f90: calling pride from Fortran through iso_c_binding (no wrapper library).
! Run it as `pride-run -n 2 ./pride_example_fortran`.
!
! The one idea: the C API takes only pointers, size_t and enums, so an interface block
! per function is all Fortran needs; the context is an opaque type(c_ptr), and the
! enums are C ints (PRIDE_FLOAT32 = 8, PRIDE_SUM = 0, from include/pride/types.h).
program pride_example
  use, intrinsic :: iso_c_binding
  implicit none

  interface
    integer(c_int) function pride_init(cfg, ctx) bind(c, name='pride_init')
      import :: c_int, c_ptr
      type(c_ptr), value :: cfg
      type(c_ptr), intent(out) :: ctx
    end function
    integer(c_int) function pride_finalize(ctx) bind(c, name='pride_finalize')
      import :: c_int, c_ptr
      type(c_ptr), value :: ctx
    end function
    integer(c_int) function pride_rank(ctx) bind(c, name='pride_rank')
      import :: c_int, c_ptr
      type(c_ptr), value :: ctx
    end function
    integer(c_int) function pride_nranks(ctx) bind(c, name='pride_nranks')
      import :: c_int, c_ptr
      type(c_ptr), value :: ctx
    end function
    integer(c_int) function pride_allreduce(ctx, sendbuf, recvbuf, count, dtype, op) &
        bind(c, name='pride_allreduce')
      import :: c_int, c_ptr, c_size_t, c_float
      type(c_ptr), value :: ctx
      real(c_float), intent(in) :: sendbuf(*)
      real(c_float), intent(out) :: recvbuf(*)
      integer(c_size_t), value :: count
      integer(c_int), value :: dtype, op
    end function
  end interface

  integer(c_int), parameter :: PRIDE_OK = 0, PRIDE_FLOAT32 = 8, PRIDE_SUM = 0
  integer, parameter :: n = 5
  type(c_ptr) :: ctx
  real(c_float) :: mine(n), total(n)
  integer(c_int) :: st, rank, nranks
  integer :: i

  st = pride_init(c_null_ptr, ctx)
  if (st /= PRIDE_OK) then
    print '(a,i0)', 'pride_init failed: ', st
    stop 1
  end if
  rank = pride_rank(ctx)
  nranks = pride_nranks(ctx)

  do i = 1, n
    mine(i) = real((rank + 1) * i, c_float)
  end do
  st = pride_allreduce(ctx, mine, total, int(n, c_size_t), PRIDE_FLOAT32, PRIDE_SUM)
  if (st /= PRIDE_OK) then
    print '(a,i0)', 'pride_allreduce failed: ', st
    stop 1
  end if
  do i = 1, n
    if (total(i) /= real(nranks * (nranks + 1) / 2 * i, c_float)) then
      print '(a,i0,a,f0.1)', 'allreduce: element ', i, ' is ', total(i)
      stop 1
    end if
  end do
  print '(a,i0,a,i0,a,f0.1,a)', 'rank ', rank, ' of ', nranks, ': Fortran allreduce ', &
    total(1), ' ok'
  st = pride_finalize(ctx)
  if (st /= PRIDE_OK) stop 1
end program pride_example
