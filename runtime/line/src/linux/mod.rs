//! The box's Linux devices: the V4L2 camera ([`camera`]), the GPIO character device for the
//! PLC's lines and inputs ([`gpio`]), and the framebuffer the overlay is shown on
//! ([`framebuffer`]).

pub mod camera;
pub mod framebuffer;
pub mod gpio;
