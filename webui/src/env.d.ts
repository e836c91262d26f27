// Ambient declarations for esbuild-handled imports.
declare module '*.css';
